"""The offline shapes experiment learns: mAP@0.5 >= 0.5 on the shapes test split (2 CPU cores, ~2-4 min)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import compose_cfg


@pytest.mark.slow
def test_yolov1_shapes_reaches_map50(tmp_path: Path) -> None:
    from litvision.train import train

    cfg = compose_cfg(
        [
            "experiment=yolov1_shapes",
            f"paths.data_dir={tmp_path / 'data'}",
            "logger=csv",
            "callbacks.rich_progress_bar=null",
        ],
        tmp_path / "runs",
    )
    started = time.time()
    summary = train(cfg)
    wall = time.time() - started
    test_map50 = summary["test"]["test/map_50"]
    print(
        f"yolov1_shapes: test mAP@0.5 {test_map50:.3f}, mAP {summary['test']['test/map']:.3f}, {wall:.0f} s"
    )
    assert summary["best_checkpoint"] and Path(summary["best_checkpoint"]).is_file()
    assert summary["test"]["test/map_50"] >= 0.5, summary["test"]
    # The per-class APs are logged under the class names, with the IoU of the matched boxes.
    assert {"test/ap/circle", "test/ap/square", "test/ap/triangle", "test/matched_iou"} <= set(
        summary["test"]
    )
    assert (Path(summary["run_dir"]) / "media" / "val_detections.png").is_file()
