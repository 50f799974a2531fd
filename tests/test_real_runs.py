"""Claims checked on the outputs of real trained runs (the tier in tests/real_runs.py), not only on
hand-made fixtures: export parity and the console of a digits run here; the extension of the
early-stopped run in test_extend_runs.py, compare on the sweep in test_sweep_compare.py."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli


def test_digits_export_matches_the_checkpoint(real_runs, tmp_path: Path) -> None:
    """`litvision export` of the tier's trained digits run exports its best checkpoint (summary.json's)
    and records parity checks that ran and passed within the 1e-4 tolerance. Catches: a run folder
    exported from last.ckpt instead of its best checkpoint, and the parity check run on no batch
    (the export fails: its max over no difference raises)."""
    run, summary = real_runs.folder("digits"), real_runs.summary("digits")
    out = tmp_path / "export"
    run_cli("litvision", "export", str(run), "--format", "onnx", "--out-dir", str(out), check=True)
    record = json.loads((out / "export.json").read_text())
    assert record["checkpoint"] == str(Path(summary["best_checkpoint"]).resolve())
    assert Path(record["checkpoint"]).name != "last.ckpt"
    assert record["parity_passed"] is True and record["checks"], record["checks"]
    assert all(c["passed"] and c["max_abs_diff"] <= 1e-4 for c in record["checks"]), record["checks"]


def test_digits_console_names_the_summarys_run_best_checkpoint_and_metrics(real_runs) -> None:
    """The console of the real fit ends with the table of the best checkpoint's validation and test
    metrics, the run folder and the best checkpoint, as summary.json holds them. Catches: the
    console naming last.ckpt as the best checkpoint, and the val and test columns swapped."""
    summary, out = real_runs.summary("digits"), real_runs.console("digits")
    lines = [line.strip() for line in out.splitlines()]
    assert f"run folder: {summary['run_dir']}" in lines
    assert f"best checkpoint: {summary['best_checkpoint']}" in lines
    assert Path(summary["best_checkpoint"]).name != "last.ckpt"
    for metric in ("acc", "loss"):
        rows = [[c.strip() for c in line.strip("│┃|").split("│")] for line in lines if line.startswith("│")]
        (row,) = [r for r in rows if r[0] == metric]
        assert row[1:] == [
            f"{summary['best_val']['val/' + metric]:.4f}",
            f"{summary['test']['test/' + metric]:.4f}",
        ]
