"""Shared test helpers: compose configs into a temporary runs folder, run the real CLI."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What the machine happens to have set must not change what a test sees: a user's shell (or a SLURM job,
# or a CI runner) may carry a tracking server, a W&B account, a SLURM allocation, a rank or another
# checkout. Each test that needs one of these sets it itself.
_MACHINE_STATE = ("MLFLOW_", "WANDB_", "SLURM_", "SUBMITIT_", "LITVISION_", "HF_", "TORCH_HOME")
_DIST_STATE = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT")
for _key in [k for k in os.environ if k.startswith(_MACHINE_STATE) or k in _DIST_STATE]:
    del os.environ[_key]
os.environ["LITVISION_ROOT"] = str(ROOT)
# Weights a machine has in its torch/HF caches (from a session with network) would load instead of the
# documented "cannot download" path: the tests see empty caches of their own.
_CACHES = Path(tempfile.mkdtemp(prefix="litvision-test-caches-"))
atexit.register(shutil.rmtree, _CACHES, True)
os.environ["TORCH_HOME"] = str(_CACHES / "torch")
os.environ["HF_HOME"] = str(_CACHES / "huggingface")
# The file-check cache (data/pipeline/filecache.py): per session, never the user's ~/.cache.
os.environ["LITVISION_CACHE_DIR"] = str(_CACHES / "litvision")
os.environ["HF_HUB_OFFLINE"] = "1"
# `make test` runs two files at once on two cores: one intra-op thread per process (and per subprocess
# it starts). With torch's default of one per core, the two workers' trainings ran four threads on two
# cores; the small networks here take the same wall time on one thread and a quarter less CPU.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The environment of a subprocess whose config names tests/*_helpers (callbacks, networks, Hydra targets).
HELPERS_ENV = {
    "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
}
# Tests never talk to a W&B server.
os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"


def compose_cfg(overrides: list[str], runs_dir: Path, config_name: str = "train"):
    """The config `litvision train <overrides>` would run, writing under `runs_dir`."""
    from litvision.config import compose

    return compose([*overrides, f"paths.runs_dir={runs_dir}"], config_name=config_name)


def run_cli(
    module: str,
    *args: str,
    cwd: Path | None = None,
    env: dict | None = None,
    timeout: float = 900,
    check: bool = False,
) -> subprocess.CompletedProcess:
    """Run `python -m <module> <args>` the way a user would; returns the finished process."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    # This checkout's litvision first, whatever PYTHONPATH a test passes: a test run from a worktree
    # must not exercise the code of the checkout litvision is installed from.
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), full_env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{module} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


# Test-only overrides for an experiment: no pretrained downloads (this machine has no network)
# and small model inputs, so that every experiment's fast_dev_run stays offline and quick.
_SMALL_INPUT = {"min_size": 64, "max_size": 96, "image_size": 64}


def offline_overrides(cfg) -> list[str]:
    """Pretrained weights off (they cannot be downloaded here; the same architecture is built from
    scratch) and small detector input sizes, for experiments run on fixtures."""
    from litvision.models.weights import pretrained_overrides

    net = cfg.get("model", {}).get("net", {}) or {}
    return pretrained_overrides(cfg) + [
        f"model.net.{k}={v}" for k, v in _SMALL_INPUT.items() if net.get(k) is not None
    ]


def one_line_refusal(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """A CLI refusal: exit 2 and one `error: ` line on stderr holding every needle; returns the line."""
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def helpers_importable(monkeypatch) -> None:
    """tests/ on sys.path: Hydra instantiates the *_helpers callbacks and networks by name."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent))


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    d = tmp_path / "runs"
    d.mkdir()
    return d


def run_folders(runs_dir: Path) -> list[Path]:
    """Every run folder (one holding .hydra/ or config.yaml) under runs_dir."""
    found = {p.parent for p in runs_dir.rglob(".hydra") if p.is_dir()}
    found |= {p.parent for p in runs_dir.rglob("config.yaml") if p.parent.name != ".hydra"}
    return sorted(found)


class StopAfterEpoch:
    """Stops fitting after epoch `epoch` (0-based) as an interruption would: last.ckpt is already written."""

    def __new__(cls, epoch: int = 0):
        from lightning.pytorch import Callback

        class _Stop(Callback):
            def on_train_epoch_end(self, trainer, pl_module) -> None:
                if trainer.current_epoch >= epoch:
                    trainer.should_stop = True

        return _Stop()


class CrashAtEpochStart:
    """Raises at the start of epoch `epoch` (0-based), after the previous epoch's checkpoints are
    written: the run is left interrupted (no summary.json), as a crash or an OOM kill would leave it."""

    def __new__(cls, epoch: int = 1):
        from lightning.pytorch import Callback

        class _Crash(Callback):
            def on_train_epoch_start(self, trainer, pl_module) -> None:
                if trainer.current_epoch >= epoch and trainer.ckpt_path is None:
                    raise RuntimeError(f"simulated crash at the start of epoch {epoch}")

        return _Crash()


# ------------------------------------------------------------------ SLURM as the machine has it, or not

SLURM_COMMANDS = ("sbatch", "sinfo", "srun", "scontrol", "squeue", "scancel", "salloc")
# What SLURM's clients print when slurmctld does not answer (slurm_load_partitions, then exit 1).
_UNREACHABLE = "slurm_load_partitions: Unable to contact slurm controller (connect failure)"


def path_without(commands: tuple[str, ...], shadow: Path) -> str:
    """$PATH with `commands` gone, whatever this machine has installed: each folder of $PATH that holds
    one of them is replaced by `shadow/<n>`, a folder of links to everything else in it."""
    folders = []
    for n, entry in enumerate(os.environ.get("PATH", os.defpath).split(os.pathsep)):
        folder = Path(entry)
        if not any((folder / c).exists() for c in commands):
            folders.append(entry)
            continue
        copy = shadow / str(n)
        copy.mkdir(parents=True, exist_ok=True)
        for item in folder.iterdir():
            if item.name not in commands and not (copy / item.name).exists():
                (copy / item.name).symlink_to(item)
        folders.append(str(copy))
    return os.pathsep.join(folders)


def unreachable_slurm_path(folder: Path, clients: tuple[str, ...] = ("sbatch", "sinfo")) -> str:
    """$PATH on which SLURM's `clients` are installed but no controller answers, as on a login node whose
    slurmctld is down: each exits 1 with the clients' own message; the other SLURM commands are gone
    (an `srun` on PATH changes what Lightning prints)."""
    stubs = folder / "slurm-bin"
    stubs.mkdir(parents=True, exist_ok=True)
    for name in clients:
        stub = stubs / name
        stub.write_text(f"#!/bin/sh\necho '{name}: error: {_UNREACHABLE}' >&2\nexit 1\n")
        stub.chmod(0o755)
    return os.pathsep.join([str(stubs), path_without(SLURM_COMMANDS, folder / "shadow")])


@pytest.fixture(scope="session")
def real_runs(tmp_path_factory: pytest.TempPathFactory):
    """The real-run tier (tests/real_runs.py): small real runs trained once and shared. Under
    pytest-xdist the workers' basetemps share a parent, where the runs are built once for all."""
    from real_runs import RealRuns

    base = tmp_path_factory.getbasetemp()
    return RealRuns(base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base)


# A two-epoch, three-batch digits run for sweep tests (test_sweep_resume, test_interrupts).
TINY_SWEEP = [
    "experiment=digits_cnn",
    "debug=limit",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=3",
    "callbacks.rich_progress_bar=null",
    "callbacks.model_summary=null",
    "callbacks.sample_grid=null",
    "logger=csv",
]


def file_digest(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file's content hash and modification time: a file rewritten with the same bytes counts."""
    import hashlib

    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with more `slow` tests (trainings to a target, the README's commands) run first.
    `make test` hands whole files to its two workers in collection order: longest first packs them
    evenly, where alphabetical order left one worker alone on a long file for the last minute."""
    from collections import Counter

    slow = Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.path])  # stable: a file's own order is kept
