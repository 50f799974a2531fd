"""Checkpoint writes that fail for real (file-size limit, read-only folder) give one line naming the
path and keep earlier checkpoints; concurrent writers of one checkpoint never collide."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import HELPERS_ENV, ROOT, run_cli, run_folders

SHORT = [
    "experiment=digits_cnn",
    "trainer.max_epochs=3",
    "++trainer.limit_train_batches=4",
    "++trainer.limit_val_batches=2",
    "logger=csv",
    "test=false",
    "callbacks.rich_progress_bar=null",
    "callbacks.model_summary=null",
    "callbacks.sample_grid=null",
]


def _load(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "Could not write checkpoint" in line]


def test_checkpoint_write_over_the_file_size_limit_is_one_line_and_keeps_earlier_checkpoints(
    runs_dir: Path,
) -> None:
    """From epoch 1 no file may exceed 100 kB (RLIMIT_FSIZE: write() fails with EFBIG, as with ENOSPC).
    Breaks if the checkpoint IO lets the OSError through (a traceback) or leaves its temp file."""
    limit = ["+callbacks.fsize._target_=fault_helpers.FileSizeLimitFrom", "+callbacks.fsize.epoch=1"]
    proc = run_cli(
        "litvision.train",
        *SHORT,
        *limit,
        "+callbacks.fsize.max_bytes=100000",
        f"paths.runs_dir={runs_dir}",
        env=HELPERS_ENV,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    (run,) = run_folders(runs_dir)
    ckpts = run / "checkpoints"
    (line,) = _error_lines(proc.stderr)
    assert str(ckpts) in line and "File too large" in line and "paths.runs_dir" in line, line
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    # Epoch 0's checkpoints are whole; nothing half-written is left beside them.
    assert sorted(p.name for p in ckpts.iterdir()) == ["best-epoch000.ckpt", "last.ckpt"]
    assert _load(ckpts / "last.ckpt")["epoch"] == 0 and _load(ckpts / "best-epoch000.ckpt")["epoch"] == 0
    assert not (run / "summary.json").exists()


def _can_bind_read_only() -> bool:
    if not shutil.which("unshare"):
        return False
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        script = f'mount --bind "{d}" "{d}" && mount -o remount,bind,ro "{d}" && ! touch "{d}/x" 2>/dev/null'
        probe = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_bind_read_only(), reason="needs `unshare -rm` to bind-mount a folder read-only")
def test_read_only_checkpoints_folder_is_one_line(runs_dir: Path) -> None:
    """The checkpoints folder is a read-only bind mount (EROFS even for root), in a private mount
    namespace. Breaks if EROFS reaches the user as a traceback."""
    run = runs_dir / "digits_cnn" / "ro"
    (run / "checkpoints").mkdir(parents=True)
    ckpts = run / "checkpoints"
    cmd = [sys.executable, "-m", "litvision.train", *SHORT, f"hydra.run.dir={run}"]
    script = f'mount --bind "{ckpts}" "{ckpts}" && mount -o remount,bind,ro "{ckpts}" && exec "$@"'
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", *cmd],
        cwd=ROOT,
        env={**os.environ, **HELPERS_ENV, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    (line,) = _error_lines(proc.stderr)
    assert str(ckpts) in line and "Read-only file system" in line, line
    assert "Traceback" not in proc.stderr
    assert list(ckpts.iterdir()) == []


def test_two_writers_of_one_checkpoint_never_share_a_temp_file(tmp_path: Path) -> None:
    """Two threads of one process (same pid) save one target 30 times each. Breaks with a pid-based temp
    name (`.last.ckpt.<pid>.tmp`): they write into one temp file and one's rename finds it gone."""
    import torch

    from litvision.utils.checkpoint_io import AtomicCheckpointIO

    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    errors: list[BaseException] = []

    def writer(value: float) -> None:
        try:
            for _ in range(30):
                io.save_checkpoint({"w": torch.full((20000,), value)}, path)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(v,)) for v in (1.0, 2.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    w = _load(path)["w"]
    assert torch.equal(w, torch.full((20000,), 1.0)) or torch.equal(w, torch.full((20000,), 2.0))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    assert (path.stat().st_mode & 0o777) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
