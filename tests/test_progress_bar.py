"""`trainer.enable_progress_bar=false` (what people set for cluster logs) works through the real CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import run_cli, run_folders

ONE_EPOCH = [
    "experiment=digits_cnn",
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=2",
    "++trainer.limit_val_batches=1",
    "++trainer.limit_test_batches=1",
    "logger=csv",
]


def test_progress_bar_off_with_the_default_callbacks(runs_dir: Path) -> None:
    """Breaks if RichProgressBar stays in the callbacks: Lightning's MisconfigurationException, exit 1.
    With the bar off, one line per epoch for cluster logs, and history.png in the run folder.
    Catches: the epoch line's "auto" inverted (lines only with a bar), epochs counted from 0
    ("epoch 0/1"), or history.png not drawn."""
    proc = run_cli(
        "litvision.train", *ONE_EPOCH, "trainer.enable_progress_bar=false", f"paths.runs_dir={runs_dir}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = run_folders(runs_dir)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs_completed"] == 1 and "test/acc" in summary["test"]
    assert "Epoch 1/1" not in proc.stdout  # Rich's bar line; printed when the bar is on
    lines = [line for line in proc.stdout.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 1, proc.stdout
    assert re.fullmatch(r"epoch 1/1  train/loss \d+\.\d{4}  val/acc \d\.\d{4} \(best\)  \d+\.\d s", lines[0])
    assert (run / "history.png").read_bytes()[:4] == b"\x89PNG"


def test_model_summary_off_drops_the_summary_callback(runs_dir: Path) -> None:
    """Breaks if the model summary callback stays in the callbacks: Lightning keeps it and prints anyway."""
    from conftest import compose_cfg

    from litvision.build import build_callbacks

    names = lambda cfg: [type(c).__name__ for c in build_callbacks(cfg)]  # noqa: E731
    on = names(compose_cfg(["experiment=digits_cnn"], runs_dir))
    off = names(compose_cfg(["experiment=digits_cnn", "++trainer.enable_model_summary=false"], runs_dir))
    assert "ModelSummary" in on and "ModelSummary" not in off
    assert [n for n in on if n != "ModelSummary"] == off
