"""A run folder's life: started (folder + lock), interrupted (no summary), finished (read-only).

    runs/<experiment>/<stamp>/
      config.yaml          the resolved config, written once when the run starts, never again
      .hydra/              the composed (unresolved) config, hydra.yaml and overrides.yaml
      resume-<n>.yaml      one per resume: the command, the overrides and the keys it changed
      .lock                held (flock) by the one process training in this folder
      summary.json         written when the run finishes; from then on nothing here is written

The lock is an advisory `fcntl.flock` on `.lock`: the kernel drops it when its process dies
(kill -9, OOM, node crash), so a stale lock never blocks the resume of an interrupted run.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from litvision.errors import UserError
from litvision.utils.run import CONFIG_FILE, SUMMARY_FILE, atomic_write

LOCK_FILE = ".lock"
HYDRA_DIR = ".hydra"
OVERRIDES_FILE = "overrides.yaml"
CHECKPOINTS = "checkpoints"


def is_run_folder(path: Path) -> bool:
    # A run's .hydra/ holds a config.yaml too (the composed one): it is part of a run, not a run.
    if path.name == HYDRA_DIR:
        return False
    return (path / CONFIG_FILE).is_file() or (path / HYDRA_DIR / OVERRIDES_FILE).is_file()


def is_finished(path: Path) -> bool:
    return (path / SUMMARY_FILE).is_file()


def owning_run(path: str | Path) -> Path | None:
    """The run folder a path belongs to: the folder itself, or `<run>/checkpoints/x.ckpt`."""
    p = Path(path).expanduser().resolve()
    for candidate in (p, p.parent, p.parent.parent):
        if candidate.is_dir() and is_run_folder(candidate):
            return candidate
    return None


def original_overrides(run: Path) -> list[str]:
    """The command-line overrides the run was started with (Hydra's `.hydra/overrides.yaml`)."""
    path = run / HYDRA_DIR / OVERRIDES_FILE
    if not path.is_file():
        raise UserError(
            f"{run} has no {HYDRA_DIR}/{OVERRIDES_FILE}, so its configuration cannot be restored; "
            "start a new run with model.net.weights=<its checkpoint> instead."
        )
    from litvision.lifecycle.resume import load_run_yaml

    data = load_run_yaml(path)
    return [str(o) for o in data] if data else []


class RunLock:
    """An exclusive, non-blocking lock on a run folder, held for the life of the process."""

    file_name = LOCK_FILE

    def __init__(self, run: Path) -> None:
        self.path = run / self.file_name
        self._fd: int | None = None

    def busy_message(self, holder: str) -> str:
        return (
            f"{self.path.parent} is being trained by {holder}; wait for it to end (or stop it) "
            "before resuming this run."
        )

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise UserError(self.busy_message(holder)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} since {_now()}".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            if is_finished(self.path.parent):
                # Nobody trains in a finished run again: leave no lock file in it.
                self.path.unlink(missing_ok=True)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def create(run: Path) -> bool:
    """Make a new run folder; True if it did not exist. A folder holding any file is never reused
    for a new run (an empty one, e.g. prepared as a mount point, is)."""
    try:
        run.mkdir(parents=True, exist_ok=False)
        return True
    except FileExistsError:
        if run.is_dir() and not any(p.is_file() for p in run.rglob("*")):
            return False
        raise UserError(
            f"Run folder {run} already exists; a new run never writes into an old one. "
            "Leave hydra.run.dir unset (a fresh timestamped folder) or resume it with resume=<folder>."
        ) from None
    except OSError as e:
        raise UserError(
            f"Cannot create the run folder {run}: {e.strerror}. Use paths.runs_dir=<folder>."
        ) from None


def write_start(
    run: Path, cfg: DictConfig, hydra_cfg: DictConfig | None, overrides: list[str], composed: str | None
) -> None:
    """config.yaml (resolved) and .hydra/ (composed, hydra, overrides), once, at the start.

    A Hydra multirun job's folder already has .hydra/ (written by Hydra): it is kept."""
    from litvision.utils.run import save_config

    save_config(cfg, run)
    hydra_dir = run / HYDRA_DIR
    if (hydra_dir / OVERRIDES_FILE).is_file():
        return
    atomic_write(hydra_dir / "config.yaml", composed if composed is not None else OmegaConf.to_yaml(cfg))
    atomic_write(hydra_dir / OVERRIDES_FILE, OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
    if hydra_cfg is not None:
        atomic_write(hydra_dir / "hydra.yaml", OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg})))


def record_resume(run: Path, record: dict[str, Any]) -> Path:
    """resume-<n>.yaml beside config.yaml: what this resume ran and changed."""
    n = 1 + sum(1 for _ in run.glob("resume-*.yaml"))
    path = run / f"resume-{n}.yaml"
    record = {"command": " ".join(sys.argv), "started_at": _now(), **record}
    atomic_write(path, OmegaConf.to_yaml(OmegaConf.create(_plain(record))))
    return path


def remove_unstarted(run: Path) -> bool:
    """Remove a new run folder that a refusal stopped before any checkpoint; True if removed."""
    ckpts = run / CHECKPOINTS
    if ckpts.is_dir() and any(ckpts.glob("*.ckpt")):
        return False
    shutil.rmtree(run, ignore_errors=True)
    # The experiment folder (and eval/, predict/ or tune/ under it) made for this run alone goes too.
    nested = run.parent.name in ("eval", "predict", "tune")
    parents = [run.parent, run.parent.parent] if nested else [run.parent]
    for parent in parents:
        try:
            parent.rmdir()
        except OSError:
            break
    return True


def read_summary_safely(run: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((run / SUMMARY_FILE).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
