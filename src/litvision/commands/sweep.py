"""`litvision sweep` / `python -m litvision.train --multirun`: a Hydra multirun (grid, Optuna, SLURM
via hydra-submitit-launcher), each job one run through the same lifecycle as `litvision fit`.

    litvision sweep experiment=digits_cnn model.optimizer.lr=1e-3,1e-2 seed=1,2,3
    litvision sweep experiment=digits_cnn hparams_search=digits_cnn_optuna

The sweep folder follows one rule (litvision.lifecycle.sweeps): the same command finds the same
folder again, so running it again resumes the sweep; `resume=<sweep folder>` does the same from the
folder's sweep.yaml. In it, Hydra makes each job's folder (<sweep>/<n>/): a job whose folder holds a
finished run is skipped without writing to it, one holding an interrupted run (a killed sweep, a
requeued SLURM job) continues from its last.ckpt with its own config, and a new one runs.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from litvision.config import config_dir
from litvision.data.pipeline.resolvers import register_resolvers
from litvision.lifecycle.job_log import close_job_log

# Config resolvers (`${class_count:...}`) must exist before Hydra resolves a config.
register_resolvers()


def _job_subdir(*, _root_: DictConfig) -> str | None:
    """hydra.output_subdir of a sweep job: none for a finished run, whose folder is never written
    again (Hydra would rewrite its .hydra/ files before the job could skip itself)."""
    out = Path(str(_root_.hydra.runtime.output_dir))
    return None if (out / "summary.json").is_file() else ".hydra"


OmegaConf.register_new_resolver("litvision_job_subdir", _job_subdir, replace=True)

_SWEEP_SYNTAX = re.compile(r"[\[\](){}]|^\w+\(")


def check_sweep(args: list[str]) -> DictConfig:
    """Compose the first job's config, so a typo fails in one line before any folder exists."""
    from litvision.config import check_experiment, compose_checked
    from litvision.lifecycle.checks import preflight
    from litvision.lifecycle.runner import value_of

    exp = value_of(args, "experiment")
    if exp is not None:
        check_experiment(exp)
    first = []
    for a in args:
        if a.startswith("-") or "=" not in a:
            continue
        key, value = a.split("=", 1)
        if key.startswith(("hydra", "+hydra")):
            continue
        if _SWEEP_SYNTAX.search(value):
            continue  # range()/choice()/interval(): leave the expansion to Hydra
        first.append(f"{key}={value.split(',')[0]}")
    cfg = compose_checked(first, "train")
    if any(a.startswith("hydra/launcher=") for a in args):
        # Jobs run on other machines (SLURM): this one's GPUs and disks say nothing about theirs.
        from litvision.lifecycle.checks import check_values

        check_values(cfg)
    else:
        preflight(cfg)
    return cfg


_held_lock: Any = None
# This sweep's folder and its job counter (lifecycle.sweeps.SweepProgress), set by prepare_sweep;
# None in a job started elsewhere (a SLURM launcher runs each job in its own process).
_folder: Path | None = None
_progress: Any = None


def prepare_sweep(args: list[str]) -> list[str]:
    """The Hydra command line of this sweep: its own overrides (from its folder with `resume=`), the
    folder the rule gives, and the jobs' output_subdir. Refusals come before anything is written."""
    global _held_lock, _folder, _progress
    from litvision.lifecycle import sweeps
    from litvision.lifecycle.runner import value_of

    resume = value_of(args, "resume")
    if resume is not None:
        args = sweeps.resume_args(resume, args)
    elif any(sweeps.override_key(a) == "resume" for a in args):
        args = [a for a in args if sweeps.override_key(a) != "resume"]
    cfg = check_sweep(args)
    folder = sweeps.sweep_folder(args, cfg.paths.runs_dir, cfg.name)
    args = [a for a in args if sweeps.override_key(a) not in ("hydra.sweep.dir", "hydra.output_subdir")]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        from litvision.errors import UserError

        raise UserError(
            f"Cannot create the sweep folder {folder}: {e.strerror}. Use paths.runs_dir=<folder>."
        ) from None
    _held_lock = sweeps.SweepLock(folder)  # held until this process ends
    _held_lock.acquire()
    sweeps.record_start(folder, args)
    done = sum(1 for p in folder.glob("*/summary.json"))
    print(f"Sweep folder: {folder}" + (f" ({done} finished job(s) kept)" if done else ""), file=sys.stderr)
    quoted = f"'{folder}'" if "'" not in str(folder) else str(folder)
    _folder, _progress = folder, sweeps.SweepProgress(sweeps.job_count(args))
    # Hydra's "[HYDRA] Launching 4 jobs locally" and "#2 : lr=..." lines: the job line says it instead.
    quiet_hydra = (
        [] if any(a.startswith("hydra/hydra_logging=") for a in args) else ["hydra/hydra_logging=none"]
    )
    return [*args, *quiet_hydra, f"hydra.sweep.dir={quoted}", "hydra.output_subdir=${litvision_job_subdir:}"]


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def _job(cfg: DictConfig) -> float | None:
    from litvision.errors import guarded

    summary = guarded(_run_job, cfg)
    # Hydra sweepers (Optuna) optimise the value the app returns.
    metric = cfg.get("optimized_metric")
    if metric:
        return summary.get("best_val", {}).get(metric, summary.get("test", {}).get(metric))
    return None


def _run_job(cfg: DictConfig) -> dict[str, Any]:
    run_dir = Path(cfg.paths.output_dir)
    if _progress is not None:
        from hydra.core.hydra_config import HydraConfig

        print(_progress.begin(int(HydraConfig.get().job.num)), flush=True)
    try:
        summary, trained = _run_job_in(cfg, run_dir)
    except BaseException:
        if _progress is not None:
            _progress.end(trained=False)
        raise
    finally:
        close_job_log(run_dir)
    if _progress is not None:
        _progress.end(trained)
    return summary


def _run_job_in(cfg: DictConfig, run_dir: Path) -> tuple[dict[str, Any], bool]:
    """(the job's summary, whether it trained: False for a finished job skipped)."""
    from litvision.commands.fit import COMMAND as FIT
    from litvision.lifecycle import run_folder
    from litvision.lifecycle.resume import check_resume_changes
    from litvision.lifecycle.runner import execute, plan_for_config

    changes = {}
    if (run_dir / "config.yaml").is_file():
        # A job folder of an earlier run of this sweep holds the job's own config: the job must be
        # the same (an experiment file edited since, or reordered overrides, would mix up results).
        changes = check_resume_changes(run_dir, cfg)
    if run_folder.is_finished(run_dir):
        summary = run_folder.read_summary_safely(run_dir) or {}
        print(f"{run_dir} is finished: skipped.", file=sys.stderr)
        return summary, False
    plan = plan_for_config(FIT, cfg, job=True)
    plan.changes = changes
    return execute(plan), True


def main() -> Path | None:
    """Run the sweep; returns its folder when a job of it has finished (for the comparison that
    ends it: litvision.train, a higher layer, prints it)."""
    from litvision.errors import guarded

    args = [a for a in sys.argv[1:] if a not in ("-m", "--multirun")]
    sys.argv = [sys.argv[0], "--multirun", *guarded(prepare_sweep, args)]
    _job()
    return _folder if _folder is not None and any(_folder.glob("*/summary.json")) else None
