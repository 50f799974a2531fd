"""`litvision.submit` (= make submit) on a real one-node SLURM cluster: a 2-task DDP job completes;
a pre-empted job (scancel --signal=USR1) checkpoints, is requeued by submitit and finishes in the
same run folder; requests that do not fit the cluster fail in one line before anything is queued."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
pytestmark = pytest.mark.slurm
CLUSTER = Path(__file__).resolve().parent / "cluster.sh"


@pytest.fixture(scope="session")
def slurm_cluster() -> dict[str, str]:
    """Start the one-node cluster (installing slurm-wlm and munge when missing: root + apt-get), stop it after.

    Where it cannot be installed the tests skip with cluster.sh's own reason.
    """
    # Not under pytest's basetemp: the daemons keep their state and job spool here while they run.
    state = Path(tempfile.mkdtemp(prefix="litvision-slurm-"))
    env = {**os.environ, "LITVISION_SLURM_DIR": str(state)}
    proc = subprocess.run(
        ["bash", str(CLUSTER), "start"], env=env, capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["cluster.sh start failed"])[-1]
        if os.geteuid() != 0 or "apt-get" in reason:
            pytest.skip(f"no local SLURM cluster: {reason}")
        raise RuntimeError(f"tests/slurm/cluster.sh start failed:\n{proc.stdout}\n{proc.stderr}")
    # The node name does not resolve on this machine: the DDP rendezvous uses localhost.
    cluster_env = {
        "SLURM_CONF": str(state / "slurm.conf"),
        "MASTER_ADDR": "127.0.0.1",
        "LITVISION_SLURM_DIR": str(state),
    }
    yield cluster_env
    subprocess.run(["bash", str(CLUSTER), "stop"], env=env, capture_output=True, text=True, timeout=120)
    shutil.rmtree(state, ignore_errors=True)


JOB = [
    "experiment=digits_cnn",
    "logger=csv",
    "callbacks.rich_progress_bar=null",
    "callbacks.model_summary=null",
]


def _env(cluster: dict[str, str]) -> dict[str, str]:
    path = os.pathsep.join([str(ROOT / "src"), str(TESTS), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, **cluster, "PYTHONPATH": path, "LITVISION_ROOT": str(ROOT), "PYTHONUNBUFFERED": "1"}


# Two CPU tasks over gloo (the cluster has 2 CPUs and no GPU), then the experiment's overrides.
CPU_JOB = ("--gpus", "0", "--tasks", "2", "--time", "00:10:00", "--", *JOB)


def _submit(cluster: dict[str, str], *args: str, wait: bool = True):
    cmd = [sys.executable, "-m", "litvision.submit", *args]
    if wait:
        return subprocess.run(cmd, env=_env(cluster), capture_output=True, text=True, timeout=900, cwd=ROOT)
    return subprocess.Popen(
        cmd, env=_env(cluster), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
    )


def _job_logs(runs: Path, tail: int = 1500) -> str:
    """The end of every task's submitit log (both attempts of a requeued job append to the same
    files), to print when the submitting process failed: its own output shows only the first error."""
    parts = []
    for log in sorted(runs.glob("*/multirun/*/.submitit/*/*_log.*")):
        parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-tail:]}")
    return "\n".join(parts)


def _job_folder(runs: Path) -> Path:
    (folder,) = [p.parent for p in runs.glob("digits_cnn/multirun/*/0/.hydra")]
    return folder


def _release_when_requeued(cluster: dict[str, str], job_id: str, timeout: float = 300) -> None:
    """SLURM makes a requeued job eligible only 2 minutes later; start it at once so the test does not idle."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        show = subprocess.run(
            ["scontrol", "show", "job", job_id], env=_env(cluster), capture_output=True, text=True
        )
        if "Restarts=1" in show.stdout and "JobState=PENDING" in show.stdout:
            subprocess.run(
                ["scontrol", "update", f"JobId={job_id}", "StartTime=now"], env=_env(cluster), check=True
            )
            return
        time.sleep(1)
    raise AssertionError(f"job {job_id} was not requeued:\n{show.stdout}")


def test_two_task_ddp_job_completes_with_one_summary(slurm_cluster, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    proc = _submit(
        slurm_cluster,
        *CPU_JOB,
        "debug=limit",
        "trainer.max_epochs=1",
        f"paths.runs_dir={runs}",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + _job_logs(runs)
    run = _job_folder(runs)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["global_step"] == 5
    assert len(list(runs.rglob("summary.json"))) == 1
    # Two SLURM tasks, ranks from SLURMEnvironment: both wrote their submitit logs.
    assert len(list(run.parent.glob(".submitit/*/*_log.out"))) == 2


def test_preempted_job_is_requeued_and_finishes_in_the_same_folder(slurm_cluster, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    marker = tmp_path / "starts.txt"
    proc = _submit(
        slurm_cluster,
        *CPU_JOB,
        "trainer.max_epochs=3",
        "++trainer.limit_train_batches=12",
        "++trainer.limit_val_batches=2",
        "test=false",
        "+callbacks.slow._target_=scale_helpers.SlowTraining",
        f"+callbacks.slow.marker={marker}",
        f"paths.runs_dir={runs}",
        wait=False,
    )
    try:
        deadline = time.time() + 600
        while not marker.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(1)
        assert marker.exists(), proc.stdout.read() if proc.poll() is not None else "training never started"
        (job_id,) = [p.name for p in runs.glob("digits_cnn/multirun/*/.submitit/*") if p.is_dir()]
        subprocess.run(["scancel", "--signal=USR1", job_id], env=_env(slurm_cluster), check=True)
        _release_when_requeued(slurm_cluster, job_id)
        out, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-4000:] + "\n" + _job_logs(runs)
    run = _job_folder(runs)
    starts = marker.read_text().split()
    assert starts == [str(run), str(run)]  # trained twice, both times in this folder
    summary = json.loads((run / "summary.json").read_text())
    assert (
        summary["global_step"] == 3 * 10 and summary["epochs_completed"] == 3
    )  # 1169 train images, 585 per rank, batch 64
    show = subprocess.run(
        ["scontrol", "show", "job", job_id], env=_env(slurm_cluster), capture_output=True, text=True
    )
    assert "Restarts=1" in show.stdout, show.stdout
    logs = "".join(p.read_text() for p in run.parent.glob(".submitit/*/*_0_log.*"))
    assert "saved" in logs and "Requeued job" in logs and "skipping" in logs


def test_requests_that_do_not_fit_the_cluster_fail_before_submitting(slurm_cluster, tmp_path: Path) -> None:
    def jobs() -> set[str]:
        out = subprocess.run(
            ["squeue", "-h", "-o", "%i"], env=_env(slurm_cluster), capture_output=True, text=True
        )
        return set(out.stdout.split())

    before = jobs()
    for args, expected in (
        (["--nodes", "3", "--gpus", "0"], "NODES=3 but partition 'debug' has 1 node(s)"),
        (["--gpus", "2"], "GPUS=2 per node but nodes in partition 'debug' have 0 GPU(s)"),
        (["--gpus", "0", "--tasks", "4"], "4 tasks per node but nodes in partition 'debug' have 2 CPUs"),
        (["--gpus", "0", "--partition", "gpu"], "PARTITION=gpu does not exist"),
    ):
        proc = _submit(slurm_cluster, *args, "--", "experiment=digits_cnn", f"paths.runs_dir={tmp_path}")
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().count("\n") == 0 and expected in proc.stderr, proc.stderr
    assert jobs() <= before and not list(tmp_path.iterdir())  # nothing queued, no run folder
