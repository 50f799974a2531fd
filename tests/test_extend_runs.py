"""Extending a run and runs that end early, through the real CLI (issues 20.2, 21.4, 25.6).

- an early-stopped run extended with `trainer.max_epochs` trains up to it: a new patience on the
  line is the one used, the old one counts again from 0; the best is the lineage's, and the
  console and summary.json name the same one;
- `trainer.max_steps=1` (training over before its first validation) finishes with a summary;
- an extension that would train nothing, a hand-edited or invalid config.yaml: one line, exit 2,
  no new folder, nothing rewritten; a moved run folder resumes.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import HELPERS_ENV, one_line_refusal, run_cli, run_folders
from real_runs import DIGITS

# The real-run tier's fast digits settings: the step counts quoted below follow from them.
SMALL = DIGITS
# No gain is ever larger than 1.0: epoch 0 sets the best, epochs 1 and 2 exhaust patience 2.
STOPS_AT_3 = [
    "trainer.max_epochs=20",
    "callbacks.early_stopping.min_delta=1.0",
    "callbacks.early_stopping.patience=2",
]


def _fit(*args: str) -> subprocess.CompletedProcess:
    return run_cli("litvision", "fit", *args, env=HELPERS_ENV, timeout=600)


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out and "dirpath has changed" not in out, out[-3000:]
    assert "exists and is not empty" not in out, out[-3000:]  # a resume's own checkpoints/
    return out


def _state(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file's bytes and mtime: a refused command rewrites and touches nothing."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    }


def _rows(run: Path) -> list[dict[str, str]]:
    (path,) = run.rglob("metrics.csv")
    with path.open() as f:
        return list(csv.DictReader(f))


def _trained_epochs(run: Path) -> list[int]:
    return sorted({int(r["epoch"]) for r in _rows(run) if r.get("train/loss")})


def _val_accs(run: Path) -> list[float]:
    # Every validation of training; the last row with val/acc is the re-validation of the best.
    return [float(r["val/acc"]) for r in _rows(run) if r.get("val/acc")][:-1]


def _the_new_run(runs: Path, known: set[Path]) -> Path:
    (new,) = [r for r in run_folders(runs) if r not in known]
    return new


def _console_best(out: str) -> str:
    (line,) = [line for line in out.splitlines() if line.startswith("best checkpoint: ")]
    return line.split(": ", 1)[1].strip()


@pytest.fixture(scope="module")
def stopped(real_runs) -> Path:
    """A finished digits run that early stopping ended after 3 epochs (patience 2): the real-run
    tier's (`SMALL` + `STOPS_AT_3`, tests/real_runs.py), trained once for the suite. The
    extensions below fork it into its runs folder; it is never written."""
    out = real_runs.console("stopped")
    assert "Traceback" not in out and "dirpath has changed" not in out, out[-3000:]
    assert "early stopping ended the run at epoch 2" in out, out[-2000:]
    run = real_runs.folder("stopped")
    assert _trained_epochs(run) == [0, 1, 2]
    return run


def test_extension_with_a_new_patience_trains_to_max_epochs_and_keeps_the_lineage_best(stopped: Path) -> None:
    """The extension zeroes its weights before each validation, so the parent's best stays the best.

    Catches: the checkpoint's patience (2) restored over the new one (one epoch trained, as before),
    the parent's best dropped on the new dirpath (the extension's chance-level epoch named best, and
    Lightning's "dirpath has changed" warning on the console), the note naming another best."""
    runs = stopped.parent.parent
    known, before = set(run_folders(runs)), _state(stopped)
    proc = _fit(
        f"resume={stopped}",
        "trainer.max_epochs=7",
        "callbacks.early_stopping.patience=50",
        "+callbacks.zero._target_=resume_helpers.ZeroWeights",
    )
    out = _ok(proc)
    assert "patience 50 (was 2)" in out and "early stopping ended" not in out, out[-3000:]
    assert "LR schedule extended: lr now" in out and "at epoch 7" in out, out[-3000:]
    new = _the_new_run(runs, known)
    assert _trained_epochs(new) == [3, 4, 5, 6]
    summary = json.loads((new / "summary.json").read_text())
    parent = json.loads((stopped / "summary.json").read_text())
    assert summary["epochs_completed"] == 7
    assert max(_val_accs(new)) < parent["best_score"]  # chance level: the extension never wins
    assert summary["best_checkpoint"] == parent["best_checkpoint"] == _console_best(out)
    assert summary["best_score"] == pytest.approx(max(_val_accs(stopped)))
    assert summary["best_val"]["val/acc"] == pytest.approx(parent["best_score"])
    assert _state(stopped) == before, "the finished parent is never written"


def test_extension_with_the_old_patience_counts_again_from_zero(stopped: Path) -> None:
    """Catches: the restored wait_count kept (stops after 1 epoch: "did not improve in the last 3"),
    the best taken over the extension alone instead of the lineage, console and summary disagreeing."""
    runs = stopped.parent.parent
    known = set(run_folders(runs))
    out = _ok(_fit(f"resume={stopped}", "trainer.max_epochs=7"))
    new = _the_new_run(runs, known)
    # Patience 2 again, counted from 0 against the parent's best (no gain beats min_delta 1.0).
    assert _trained_epochs(new) == [3, 4]
    assert "early stopping ended the run at epoch 4" in out and "in the last 2 validations" in out
    summary = json.loads((new / "summary.json").read_text())
    lineage = _val_accs(stopped) + _val_accs(new)
    assert summary["best_score"] == pytest.approx(max(lineage))
    assert summary["best_checkpoint"] == _console_best(out)
    assert f"best val/acc {summary['best_score']:.4g}" in out
    in_parent = max(_val_accs(stopped)) >= max(_val_accs(new))
    assert Path(summary["best_checkpoint"]).is_relative_to(stopped if in_parent else new)


def test_extension_that_trains_nothing_is_refused_in_one_line(stopped: Path) -> None:
    """Catches: max_epochs at or below the epochs done accepted (a new "finished" run that trained
    nothing), a folder left behind, the parent touched."""
    runs = stopped.parent.parent
    known, before = set(run_folders(runs)), _state(stopped)
    one_line_refusal(
        _fit(f"resume={stopped}", "trainer.max_epochs=3"), "trainer.max_epochs=3", "has done 3 epochs"
    )
    one_line_refusal(_fit(f"resume={stopped}", "trainer.max_steps=5"), "trainer.max_steps=5", "(18 steps)")
    assert set(run_folders(runs)) == known and _state(stopped) == before


def test_max_steps_before_the_first_validation_finishes_normally(tmp_path: Path) -> None:
    """Catches: EarlyStopping's "conditioned on metric val/acc which is not available" RuntimeError,
    ModelCheckpoint's missing-key warning on the console, the run left without a summary."""
    proc = _fit(*SMALL, "trainer.max_steps=1", f"paths.runs_dir={tmp_path}")
    out = _ok(proc)
    assert out.count("before its first validation") == 1 and "could not find the monitored key" not in out
    (run,) = run_folders(tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["global_step"] == 1 and summary["best_checkpoint"] is None
    assert summary["test"]["test/acc"] >= 0 and summary["last_checkpoint"]


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run that crashed at the start of epoch 1 (no summary.json), max_epochs=2."""
    runs = tmp_path_factory.mktemp("interrupted")
    crash = ["+callbacks.crash._target_=conftest.CrashAtEpochStart", "+callbacks.crash.epoch=1"]
    proc = _fit(*SMALL, "trainer.max_epochs=2", *crash, f"paths.runs_dir={runs}")
    assert proc.returncode != 0 and "simulated crash" in proc.stderr
    (run,) = run_folders(runs)
    assert (run / "checkpoints" / "last.ckpt").is_file() and not (run / "summary.json").exists()
    return run


def test_resume_with_max_steps_already_done_is_refused(interrupted: Path) -> None:
    """Catches: the schedule "re-planned from 12 to 2 steps" and the run closed as finished, the
    refusal writing a resume record."""
    before = _state(interrupted)
    one_line_refusal(
        _fit(f"resume={interrupted}", "trainer.max_steps=6"),
        "trainer.max_steps=6",
        "has done 1 epoch (6 steps)",
    )
    assert _state(interrupted) == before


@pytest.mark.parametrize("edit", ["hand-edited", "invalid YAML"])
def test_edited_config_yaml_is_one_line_naming_the_file(edit: str, interrupted: Path, tmp_path: Path) -> None:
    """Catches: "Drop that override" for an override never given, a ParserError traceback."""
    run = tmp_path / interrupted.name
    shutil.copytree(interrupted, run)
    config = run / "config.yaml"
    if edit == "hand-edited":
        config.write_text(config.read_text().replace("lr: 0.01\n", "lr: 0.02\n", 1))
    else:
        config.write_text(config.read_text() + "extra: [1, 2\nmore: 3\n")
    before = _state(run)
    line = one_line_refusal(_fit(f"resume={run}"), str(config))
    assert "Drop that override" not in line
    if edit == "hand-edited":
        assert "model.optimizer.lr=0.02" in line and "edited by hand" in line and "lr: 0.01" in line
    else:
        n = len(config.read_text().splitlines())
        assert "is not valid YAML at line" in line and f"line {n}" in line
    assert _state(run) == before


def test_a_moved_run_folder_resumes_with_its_best(interrupted: Path, tmp_path: Path) -> None:
    """The original is away while its moved copy resumes: the checkpoint's recorded paths exist nowhere.

    Catches: the move refused as a changed callbacks.model_checkpoint.dirpath "override", the best
    checkpoint's path not read at the new place (the restored best dropped: two best-*.ckpt files
    left, top-1 no longer kept), the original touched."""
    moved = tmp_path / "b" / "moved-run"
    shutil.copytree(interrupted, moved)
    away = tmp_path / "away"
    before = _state(interrupted)
    interrupted.rename(away)
    try:
        out = _ok(_fit(f"resume={moved}"))
    finally:
        away.rename(interrupted)
    summary = json.loads((moved / "summary.json").read_text())
    assert summary["run_dir"] == str(moved) and summary["epochs_completed"] == 2
    (best,) = (moved / "checkpoints").glob("best-*.ckpt")
    assert summary["best_checkpoint"] == str(best) == _console_best(out)
    assert _state(interrupted) == before
