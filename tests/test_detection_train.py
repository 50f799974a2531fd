"""The offline shapes experiment learns, and what its run reports is one evaluation: read from the
real-run tier's `make train EXP=yolov1_shapes` run (tests/real_runs.py), trained once per suite run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

CLASSES = ("circle", "square", "triangle")


@pytest.mark.slow
def test_yolov1_shapes_learns(real_runs) -> None:
    """mAP@0.5 >= 0.25 on the shapes test split after 5 epochs (0.34 measured; 0.59 after the
    recipe's 10; an untrained detector scores 0.00), the best checkpoint kept, the per-class APs
    logged under the class names with the IoU of the matched boxes, and the val detections drawn."""
    summary = real_runs.summary("yolov1_shapes")
    assert summary["best_checkpoint"] and Path(summary["best_checkpoint"]).is_file()
    assert summary["epochs_completed"] == 5
    assert summary["test"]["test/map_50"] >= 0.25, summary["test"]
    assert {*(f"test/ap/{c}" for c in CLASSES), "test/matched_iou"} <= set(summary["test"])
    assert (Path(summary["run_dir"]) / "media" / "val_detections.png").is_file()


@pytest.mark.slow
def test_the_per_class_table_and_the_logged_map_are_one_evaluation(real_runs) -> None:
    """On a trained detector's real test outputs (issue 20: the table once said circle AP50 0.033
    beside test/map_50 0.184): summary.json's per-class AP50 averages to test/map_50 and its AP is
    test/ap/<class>, to 1e-4. Catches the table computed from another set of detections (a second
    NMS or score cut) or another evaluator than the logged mAP."""
    summary = real_runs.summary("yolov1_shapes")
    table, test = summary["test_per_class_ap"], summary["test"]
    assert set(table) == set(CLASSES)
    assert np.mean([row["ap_50"] for row in table.values()]) == pytest.approx(test["test/map_50"], abs=1e-4)
    for name, row in table.items():
        assert row["ap"] == pytest.approx(test[f"test/ap/{name}"], abs=1e-4), name
        assert row["objects"] > 0
