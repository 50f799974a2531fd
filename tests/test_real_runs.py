"""Claims checked on the outputs of real trained runs (the tier in tests/real_runs.py), not only on
hand-made fixtures: the per-class AP of a trained detector against its map_50, the detection media
and log, export parity and the console of a digits run. The extension, compare and predict are
checked on the same runs by test_extend_runs.py, test_sweep_compare.py and test_predict.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli


@pytest.mark.slow  # a 3-epoch yolov1_shapes run (shared, built once)
def test_trained_detector_per_class_ap_averages_to_its_map_50(real_runs) -> None:
    """On a real 3-epoch yolov1_shapes run (the one that showed per-class AP50 5-10x below map_50):
    summary.json's per-class AP50 averages to test/map_50, its AP to test/map; the figures are
    drawn; COCOeval's summary is in train.log once, for the test. Catches: per-class AP50 read at
    IoU 0.55 (the table from another slice of COCOeval's precision than map_50), and the table's
    boxes read in another format than the metric's (xywh for xyxy: the bug the tier was made for)."""
    run, summary = real_runs.folder("yolov1"), real_runs.summary("yolov1")
    table, test = summary["test_per_class_ap"], summary["test"]
    assert set(table) == {"circle", "square", "triangle"} and all(r["objects"] > 0 for r in table.values())
    assert test["test/map_50"] > 0.05, "trained enough that the table and map_50 can disagree"
    assert np.mean([r["ap_50"] for r in table.values()]) == pytest.approx(test["test/map_50"], abs=1e-4)
    assert np.mean([r["ap"] for r in table.values()]) == pytest.approx(test["test/map"], abs=1e-4)
    for name in ("test_pr_curve", "test_f1_curve", "test_confusion_matrix"):
        assert (run / "media" / f"{name}.png").stat().st_size > 5000, name
    log = (run / "train.log").read_text()
    assert log.count("COCO summary") == 1 and "test COCO summary" in log
    assert "faster_coco_eval" not in log


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
