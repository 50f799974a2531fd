"""Bad training options through the real command line: one line naming the key, exit code 2, no
checkpoint or summary written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import ROOT, compose_cfg, run_cli

from litvision.config import experiment_names

BAD = [
    ("model.ema_decay=1.5", "model.ema_decay=1.5"),
    ("data.mixup_alpha=-1", "data.mixup_alpha=-1"),
    ("model.class_weights=[1.0,2.0,3.0]", "model.class_weights has 3 values but there are 10 classes"),
]
ENV = {"PYTHONPATH": str(ROOT / "src")}


def _files(runs: Path) -> list[Path]:
    return [p for p in runs.rglob("*") if p.is_file() and (p.suffix == ".ckpt" or p.name == "summary.json")]


@pytest.mark.parametrize(("override", "needle"), BAD)
def test_bad_option_is_one_line_and_writes_nothing(override: str, needle: str, tmp_path: Path) -> None:
    """Catches: a traceback (the error raised as something other than UserError) or training that
    starts before the value is checked."""
    runs = tmp_path / "runs"
    proc = run_cli("litvision.train", override, f"paths.runs_dir={runs}", env=ENV)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and needle in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not _files(runs)


def test_bad_option_is_refused_before_a_run_folder_exists(tmp_path: Path) -> None:
    """Catches: the option checks running only after Hydra made the run folder."""
    runs = tmp_path / "runs"
    proc = run_cli("litvision.train", "model.ema_decay=1.5", f"paths.runs_dir={runs}", env=ENV)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert not runs.exists() or not any(runs.iterdir()), os.listdir(runs)


@pytest.mark.parametrize("name", experiment_names())
def test_every_experiment_passes_the_option_checks(name: str, tmp_path: Path) -> None:
    """Catches: a check that refuses a shipped experiment's defaults (the CLI would refuse to run it)."""
    from litvision.tasks.options import check_training_options

    check_training_options(compose_cfg([f"experiment={name}"], tmp_path))
