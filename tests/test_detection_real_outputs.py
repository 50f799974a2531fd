"""One AP on a real detector's outputs: the per-class AP table, the PR curves and the logged mAP of a
yolov1_shapes model trained for 3 epochs come from one COCOeval and agree.

The fixture (tests/fixtures/yolov1_shapes_test_outputs.json, made by make_yolov1_shapes_outputs.py)
holds that model's test detections and targets. They go through the path the task takes: the test
metric's update, its accumulated states (`metric_states`), `compute_map(extended=True)` and
`detection_report(..., evaluation=...)`. Before the fix the states' XYWH boxes were read as XYXY and
the per-class AP50 of this model was 5-10x below its test/map_50.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from litvision.metrics.detection import RECALL_POINTS, compute_map, make_map_metric, metric_targets
from litvision.metrics.detection_report import detection_report, metric_states, pr_curve_figure

FIXTURE = Path(__file__).parent / "fixtures" / "yolov1_shapes_test_outputs.json"


def load_outputs() -> tuple[list[dict], list[dict], list[str]]:
    doc = json.loads(FIXTURE.read_text())
    preds, targets = [], []
    for img in doc["images"]:
        dt = torch.tensor(img["dt"], dtype=torch.float64).reshape(-1, 6)
        gt = torch.tensor(img["gt"], dtype=torch.float64).reshape(-1, 5)
        preds.append({"boxes": dt[:, :4].float(), "scores": dt[:, 4].float(), "labels": dt[:, 5].long()})
        targets.append({"boxes": gt[:, :4].float(), "labels": gt[:, 4].long()})
    return preds, targets, doc["class_names"]


@pytest.fixture(scope="module")
def evaluated() -> dict:
    """The test stage of DetectionTask on the fixture: update in batches, then one extended compute."""
    preds, targets, names = load_outputs()
    metric = make_map_metric(class_metrics=True)
    for i in range(0, len(preds), 16):  # the test batch size of yolov1_shapes
        metric.update(preds[i : i + 16], metric_targets(targets[i : i + 16]))
    res = compute_map(metric, extended=True)
    state_preds, state_targets = metric_states(metric)
    report = detection_report(state_preds, state_targets, names, conf_thresh=0.1, evaluation=res)
    return {
        "preds": preds,
        "targets": targets,
        "names": names,
        "res": res,
        "report": report,
        "state_preds": state_preds,
        "state_targets": state_targets,
    }


def test_per_class_ap50_averages_to_the_logged_map_50(evaluated: dict) -> None:
    """Catches: the metric's XYWH states read as XYXY (the bug: AP50 ~0.02 for a map_50 of 0.2); the
    per-class AP50 read at IoU 0.55, or at the 10-detection cap, instead of map_50's entries."""
    res, report = evaluated["res"], evaluated["report"]
    assert float(res["map_50"]) > 0.1, "a trained detector: the comparison must not be 0 == 0"
    assert (report.ap_50 >= 0).all()
    assert report.ap_50.mean() == pytest.approx(float(res["map_50"]), abs=1e-4)
    # The table (summary.json's test_per_class_ap) says the same, and its AP is test/ap/<class>.
    table = [report.per_class[n]["ap_50"] for n in evaluated["names"]]
    assert float(np.mean(table)) == pytest.approx(float(res["map_50"]), abs=1e-4)
    np.testing.assert_allclose(report.ap, res["map_per_class"].numpy(), atol=1e-4)
    # The metric's states are the boxes it was given, so a report that evaluates them itself
    # (no `evaluation`) finds the same AP.
    for given, state in zip(evaluated["preds"], evaluated["state_preds"], strict=True):
        torch.testing.assert_close(state["boxes"], given["boxes"])
    own = detection_report(evaluated["state_preds"], evaluated["state_targets"], evaluated["names"])
    np.testing.assert_allclose(own.ap_50, report.ap_50, atol=1e-6)


def _coco_interpolated_precision(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> np.ndarray:
    """pycocotools cocoeval.py accumulate(): precision made monotone, read at the 101 recall points."""
    order = np.argsort(-scores, kind="mergesort")
    tp = tp[order].astype(float)
    tps, fps = np.cumsum(tp), np.cumsum(1 - tp)
    recall = tps / num_gt
    precision = tps / np.maximum(tps + fps, np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    return np.array([precision[i] if i < len(precision) else 0.0 for i in idx])


def test_pr_curve_area_is_the_class_ap50(evaluated: dict) -> None:
    """Catches: the PR curve drawn at IoU 0.5:0.95 (or 0.75) instead of 0.5; a figure that plots other
    data than the table; per-detection matches (F1, confusion) that disagree with the evaluator's."""
    report, res = evaluated["report"], evaluated["res"]
    fig = pr_curve_figure(report)
    lines = {line.get_label().split(" AP50")[0].split(" mAP50")[0]: line for line in fig.axes[0].get_lines()}
    for c, name in enumerate(report.class_names):
        x, y = lines[name].get_data()
        np.testing.assert_allclose(x, RECALL_POINTS)
        # COCO's AP is the mean of the interpolated precision over the 101 recall points: the area.
        assert float(np.mean(y)) == pytest.approx(report.ap_50[c], abs=1e-6), name
        assert f"AP50 {report.ap_50[c]:.3f}" in lines[name].get_label()
        # The same curve from the report's own per-detection matches (what F1 and the confusion
        # matrix count): both evaluations see the same detections the same way.
        m = report.matches[c]
        np.testing.assert_allclose(_coco_interpolated_precision(m.scores, m.tp, m.num_gt), y, atol=1e-6)
    _, y_all = lines["all classes"].get_data()
    assert float(np.mean(y_all)) == pytest.approx(float(res["map_50"]), abs=1e-4)
