"""Ctrl-C during a sweep stops the running job the way SIGTERM does (a resumable checkpoint and one
line saying how to resume), and an unusable MLflow store is refused up front."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HELPERS_ENV, ROOT, TINY_SWEEP, file_digest


def _sweep_in_own_terminal(*args: str) -> subprocess.CompletedProcess:
    """`litvision sweep <args>` in its own session, as the foreground job of a terminal: the Ctrl-C its
    helper sends goes to that process group only, not to pytest."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **HELPERS_ENV}
    return subprocess.run(
        [sys.executable, "-m", "litvision", "sweep", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,
    )


@pytest.mark.slow
def test_ctrl_c_in_a_sweep_checkpoints_and_the_same_command_resumes(tmp_path: Path) -> None:
    """Ctrl-C in job 1 of a two-job sweep, through the real CLI; then the same command again.
    Catches: SIGINT left to Lightning (exit 1, no checkpoint, no message: SIGINT dropped from the
    callback's signals), and a resume line that names `fit resume=` for a sweep's job (the sweep
    folder not recognised); and on the rerun, the finished job retrained or rewritten."""
    runs, marker = tmp_path / "runs", tmp_path / "trained.txt"
    ctrl_c = ["+callbacks.ctrlc._target_=interrupt_helpers.CtrlC", "+callbacks.ctrlc.job=1"]
    args = [*TINY_SWEEP, "seed=1,2", *ctrl_c, f"+callbacks.ctrlc.marker={marker}", f"paths.runs_dir={runs}"]
    first = _sweep_in_own_terminal(*args)
    assert first.returncode == 130, first.stderr[-3000:]  # 128 + SIGINT, as a shell reports Ctrl-C
    [sweep] = (runs / "digits_cnn" / "multirun").iterdir()
    last = sweep / "1" / "checkpoints" / "last.ckpt"
    said = [ln for ln in (first.stdout + first.stderr).splitlines() if "SIGINT" in ln]
    assert len(said) == 1, said
    assert (
        f"saved {last} at epoch 1" in said[0]
        and f"litvision sweep resume={sweep}`) to resume job 1" in said[0]
    )
    assert "Traceback" not in first.stderr
    assert (sweep / "0" / "summary.json").is_file() and not (sweep / "1" / "summary.json").exists()
    assert last.is_file()
    before = file_digest(sweep / "0")
    marker.unlink()

    again = _sweep_in_own_terminal(*args)  # the same command
    assert again.returncode == 0, again.stderr[-3000:]
    assert [line.split(" ", 1) for line in marker.read_text().splitlines()] == [["1", str(last)]]
    assert file_digest(sweep / "0") == before
    assert (sweep / "1" / "summary.json").is_file()
    assert f"{sweep / '0'} is finished: skipped." in again.stderr
