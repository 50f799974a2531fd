"""Submit an experiment to SLURM through submitit (hydra-submitit-launcher).

    make submit EXP=vit_cifar10 NODES=2 GPUS=8 PARTITION=gpu TIME=12:00:00 ACCOUNT=proj QOS=normal
    python -m litvision.submit --nodes 1 --gpus 0 --tasks 2 -- experiment=digits_cnn trainer=ddp_cpu

One SLURM task per GPU (tasks_per_node = GPUS), so Lightning's SLURMEnvironment reads ranks and the
main address from SLURM. The job runs in `runs/<experiment>/multirun/<stamp>/<n>/`; if SLURM sends
the pre-emption signal (SIGUSR1, 90 s before the time limit, or `scancel --signal=USR1 <job>`), the
run saves checkpoints/last.ckpt, submitit requeues the job and the requeued job resumes there.
Like any Hydra multirun with this launcher, the command waits for the jobs and prints their
results; Ctrl-C stops waiting but does not cancel them (`scancel <job>` does).

NODES/GPUS/TASKS are checked against `sinfo` before anything is submitted.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys

from litvision.errors import UserError, guarded


def parse_time(text: str) -> int:
    """SLURM time ('[D-]HH:MM:SS', 'HH:MM', 'MM') -> whole minutes, rounded up."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not m:
        raise UserError(f"TIME={text} is not a SLURM time: use HH:MM:SS (e.g. TIME=04:00:00) or D-HH:MM:SS.")
    days, a, b, c = (int(x) if x else None for x in m.groups())
    if b is None and c is None:
        seconds = a * 60  # plain minutes, as sbatch reads them
    elif c is None:
        seconds = a * 3600 + b * 60
    else:
        seconds = a * 3600 + b * 60 + c
    seconds += (days or 0) * 86400
    if seconds <= 0:
        raise UserError(f"TIME={text} must be longer than zero.")
    return -(-seconds // 60)


def _gpus(gres: str) -> int:
    """GPUs per node from sinfo's %G ('gpu:8', 'gpu:a100:4(S:0-1)', '(null)')."""
    total = 0
    for item in gres.split(","):
        m = re.match(r"gpu(?::[^:(]+)?:(\d+)", item.strip())
        if m:
            total += int(m.group(1))
    return total


def cluster_partitions() -> dict[str, dict[str, int | bool]]:
    """Partition -> {nodes, cpus (max per node), gpus (max per node), default}, from `sinfo`."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        raise UserError(
            "sbatch/sinfo not found: `make submit` runs on a SLURM login node. Without SLURM, start one "
            "torchrun per machine (README, Scaling out)."
        )
    out = subprocess.run(["sinfo", "-h", "-o", "%P|%D|%c|%G"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise UserError(
            f"sinfo failed ({out.stderr.strip() or out.returncode}): is the SLURM controller reachable?"
        )
    parts: dict[str, dict[str, int | bool]] = {}
    for line in out.stdout.splitlines():
        name, nodes, cpus, gres = line.strip().split("|")
        default = name.endswith("*")
        p = parts.setdefault(name.rstrip("*"), {"nodes": 0, "cpus": 0, "gpus": 0, "default": default})
        p["nodes"] = int(p["nodes"]) + int(nodes)
        p["cpus"] = max(int(p["cpus"]), int(re.sub(r"\D.*", "", cpus) or 0))
        p["gpus"] = max(int(p["gpus"]), _gpus(gres))
    return parts


def check_request(nodes: int, gpus: int, tasks: int, partition: str | None) -> str:
    """The partition to use; a one-line UserError when the request cannot fit the cluster."""
    if nodes < 1:
        raise UserError(f"NODES={nodes}: ask for at least one node.")
    if gpus < 0 or tasks < 1:
        raise UserError(f"GPUS={gpus}, TASKS={tasks}: GPUS must be >= 0 and TASKS >= 1.")
    if gpus and tasks != gpus:
        raise UserError(f"TASKS={tasks} but GPUS={gpus}: DDP runs one task per GPU; leave TASKS unset.")
    parts = cluster_partitions()
    if partition is None:
        defaults = [n for n, p in parts.items() if p["default"]]
        if not defaults:
            raise UserError(
                f"No default partition on this cluster: set PARTITION to one of {', '.join(parts)}."
            )
        partition = defaults[0]
    if partition not in parts:
        raise UserError(f"PARTITION={partition} does not exist: this cluster has {', '.join(parts)}.")
    p = parts[partition]
    if nodes > int(p["nodes"]):
        raise UserError(
            f"NODES={nodes} but partition '{partition}' has {p['nodes']} node(s): set NODES<={p['nodes']}."
        )
    if gpus > int(p["gpus"]):
        raise UserError(
            f"GPUS={gpus} per node but nodes in partition '{partition}' have {p['gpus']} GPU(s): "
            f"set GPUS<={p['gpus']}"
            + (" or GPUS=0 TASKS=<n> trainer=ddp_cpu for a CPU job." if not p["gpus"] else ".")
        )
    if tasks > int(p["cpus"]):
        raise UserError(
            f"{tasks} tasks per node but nodes in partition '{partition}' have {p['cpus']} CPUs: lower GPUS/TASKS."
        )
    return partition


def _blank(x: str | None) -> str | None:
    return x if x not in (None, "", "null") else None


def build_command(a: argparse.Namespace, overrides: list[str], partition: str) -> list[str]:
    tasks = a.tasks or a.gpus or 1
    cmd = [sys.executable, "-m", "litvision.train", "-m", *overrides]
    if not any(o.startswith("trainer=") for o in overrides):
        cmd.append("trainer=ddp" if a.gpus else "trainer=ddp_cpu")
    cmd += [
        f"trainer.num_nodes={a.nodes}",
        f"trainer.devices={tasks}",
        "hydra/launcher=slurm",
        f"hydra.launcher.nodes={a.nodes}",
        f"hydra.launcher.tasks_per_node={tasks}",
        f"hydra.launcher.partition={partition}",
        f"hydra.launcher.timeout_min={parse_time(a.time)}",
    ]
    if a.gpus:
        cmd.append(f"hydra.launcher.gpus_per_node={a.gpus}")
    for key in ("account", "qos", "constraint"):
        if _blank(getattr(a, key)):
            cmd.append(f"hydra.launcher.{key}={getattr(a, key)}")
    for flag in shlex.split(a.sbatch or ""):
        # --mail-type=END -> additional_parameters.mail_type=END (submitit writes #SBATCH --mail-type=END)
        m = re.fullmatch(r"--?([A-Za-z][\w-]*)(?:=(.*))?", flag)
        if not m:
            raise UserError(f"SBATCH flag '{flag}' is not of the form --name or --name=value.")
        key = m.group(1).replace("-", "_")
        cmd.append(
            f"+hydra.launcher.additional_parameters.{key}={m.group(2) if m.group(2) is not None else 'true'}"
        )
    return cmd


def _checked_command(a: argparse.Namespace, overrides: list[str]) -> list[str]:
    """The Hydra command for this request, or a UserError before anything reaches the queue."""
    from litvision.config import check_experiment, project_root
    from litvision.lifecycle.runner import value_of

    tasks = a.tasks or a.gpus or 1
    parse_time(a.time)
    partition = check_request(a.nodes, a.gpus, tasks, _blank(a.partition))
    cmd = build_command(a, overrides, partition)
    # Typos fail before anything is queued: here for the experiment, and in the sweep process
    # (litvision.commands.sweep.check_sweep) for every key. GPUs are checked in the job, not on
    # the login node, which often has none.
    os.environ.setdefault("LITVISION_ROOT", str(project_root()))
    experiment = value_of(overrides, "experiment")
    if experiment:
        check_experiment(experiment)
    return cmd


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="litvision.submit", description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=1)
    ap.add_argument("--gpus", type=int, default=1, help="GPUs per node (0: a CPU job)")
    ap.add_argument(
        "--tasks",
        type=lambda s: int(s) if s else None,
        default=None,
        help="tasks per node; defaults to GPUS (one per GPU), or 1 for a CPU job",
    )
    ap.add_argument("--partition", default=None)
    ap.add_argument("--time", default="01:00:00")
    ap.add_argument("--account", default=None)
    ap.add_argument("--qos", default=None)
    ap.add_argument("--constraint", default=None)
    ap.add_argument("--sbatch", default="", help="extra sbatch flags, e.g. '--mail-type=END --exclusive'")
    ap.add_argument("--dry-run", action="store_true", help="print the Hydra command instead of running it")
    a, overrides = ap.parse_known_args(sys.argv[1:] if argv is None else argv)
    overrides = [o for o in overrides if o != "--"]
    cmd = guarded(_checked_command, a, overrides)
    if a.dry_run:
        print(shlex.join(cmd))
        return 0
    # submitit asks SLURM for this signal before the time limit and requeues on it; the
    # PreemptionCheckpoint callback listens to it too (USR1 unless set otherwise).
    env = {**os.environ, "SUBMITIT_PREEMPT_SIGNAL": os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR1")}
    return subprocess.call(cmd, env=env)


if __name__ == "__main__":
    raise SystemExit(main())
