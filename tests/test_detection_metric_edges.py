"""metrics/detection.py at its edges: the backend choice, COCOeval's float64 thresholds, area-based
size buckets, targets without boxes, and COCO results JSON with category ids that have gaps.
Written against the survivors of `make mutate` on metrics/detection.py; tests/test_detection_map.py
has the comparison with pycocotools on realistic data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from litvision.metrics.detection import (
    coco_results,
    make_iou_metric,
    make_map_metric,
    map_backend,
    metric_targets,
)


def test_backend_is_faster_coco_eval_when_installed_and_can_be_chosen() -> None:
    """Catches: the backend probe answering pycocotools although faster-coco-eval is installed (a
    dependency of the project), and an explicit backend ignored."""
    pytest.importorskip("faster_coco_eval")
    assert map_backend() == "faster_coco_eval"
    assert make_map_metric()._coco_backend.backend == "faster_coco_eval"
    assert make_map_metric(backend="pycocotools")._coco_backend.backend == "pycocotools"


def test_backend_falls_back_to_pycocotools_without_faster_coco_eval(monkeypatch) -> None:
    """Catches: the fallback naming another backend than pycocotools (torchmetrics would refuse it)."""
    import sys

    monkeypatch.setitem(sys.modules, "faster_coco_eval", None)  # `import faster_coco_eval` now fails
    assert map_backend() == "pycocotools"
    assert make_map_metric()._coco_backend.backend == "pycocotools"


def test_map_metric_uses_cocoeval_float64_thresholds_and_xyxy_boxes() -> None:
    """Catches: torchmetrics' float32 default thresholds (0.7000000476...), another box format or IoU
    type, and class_metrics not passed through."""
    metric = make_map_metric(class_metrics=False)
    assert metric.iou_thresholds == np.linspace(0.5, 0.95, 10).tolist()
    assert metric.rec_thresholds == np.linspace(0.0, 1.0, 101).tolist()
    assert metric.box_format == "xyxy" and metric.iou_type == ("bbox",) and metric.class_metrics is False
    assert make_map_metric().class_metrics is True


def _one_box_image(pred_box, gt_box, area=None):
    target = {"boxes": torch.tensor([gt_box], dtype=torch.float32), "labels": torch.tensor([1])}
    if area is not None:
        target["area"] = torch.tensor([area])
    pred = {"boxes": torch.tensor([pred_box]), "scores": torch.tensor([0.9]), "labels": torch.tensor([1])}
    return pred, target


def test_size_buckets_follow_the_annotations_area_not_the_box() -> None:
    """Catches: the annotation's `area` dropped from the targets (COCO buckets by segmentation area: a
    large box around a thin object counts as small) or passed as something other than a float area."""
    pred, target = _one_box_image([0.0, 0, 100, 100], [0.0, 0, 100, 100], area=500.0)  # box area 10000
    metric = make_map_metric()
    metric.update([pred], metric_targets([target]))
    out = metric.compute()
    assert float(out["map_small"]) == pytest.approx(1.0)
    assert float(out["map_large"]) == -1.0  # no large object at all
    without = make_map_metric()
    without.update([pred], metric_targets([{k: v for k, v in target.items() if k != "area"}]))
    assert float(without.compute()["map_large"]) == pytest.approx(1.0)


def test_metric_targets_are_plain_tensors_of_the_right_shape_and_type() -> None:
    """Catches: an image without boxes not reshaped to (0, 4) (torchmetrics refuses shape (0,)),
    labels or iscrowd not cast to integers, and boxes left in integer or subclass tensors."""
    from torchvision import tv_tensors

    targets = [
        {
            "boxes": tv_tensors.BoundingBoxes([[1, 2, 3, 4]], format="XYXY", canvas_size=(10, 10)),
            "labels": np.array([2], dtype=np.int32),
            "iscrowd": [True],
            "area": [4],
        },
        {"boxes": np.zeros((0,)), "labels": []},
    ]
    a, b = metric_targets(targets)
    assert type(a["boxes"]) is torch.Tensor and a["boxes"].dtype == torch.float32
    assert a["boxes"].tolist() == [[1.0, 2.0, 3.0, 4.0]]
    assert a["labels"].dtype == torch.int64 and a["labels"].tolist() == [2]
    assert a["iscrowd"].dtype == torch.int64 and a["iscrowd"].tolist() == [1]
    assert a["area"].dtype == torch.float32 and a["area"].tolist() == [4.0]
    assert b["boxes"].shape == (0, 4) and b["labels"].shape == (0,) and set(b) == {"boxes", "labels"}
    metric = make_map_metric()
    no_pred = {
        "boxes": torch.zeros((0, 4)),
        "scores": torch.zeros(0),
        "labels": torch.zeros(0, dtype=torch.long),
    }
    metric.update([no_pred], [b])  # an image with nothing in it is valid input
    assert float(metric.compute()["map"]) == -1.0


def test_coco_results_write_xywh_boxes_and_map_labels_back_to_category_ids() -> None:
    """Catches: XYXY boxes written as such (COCO wants x, y, w, h), labels written instead of the
    dataset's category ids (COCO's 1..90 with gaps), ids or scores left as tensors/numpy types, and
    predictions, ids, boxes and scores of different lengths silently truncated."""
    preds = [
        {
            "boxes": torch.tensor([[10.0, 20, 40, 60], [0.0, 0, 5, 5]]),
            "scores": torch.tensor([0.75, 0.5]),
            "labels": torch.tensor([0, 2]),
        },
        {"boxes": torch.zeros((0, 4)), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)},
        {"boxes": torch.tensor([1.0, 1, 2, 3]), "scores": torch.tensor([0.25]), "labels": torch.tensor([1])},
    ]
    ids = np.array([42, 43, 44])
    out = coco_results(preds, ids, category_ids=[1, 3, 90])
    assert out == [
        {"image_id": 42, "category_id": 1, "bbox": [10.0, 20.0, 30.0, 40.0], "score": 0.75},
        {"image_id": 42, "category_id": 90, "bbox": [0.0, 0.0, 5.0, 5.0], "score": 0.5},
        {"image_id": 44, "category_id": 3, "bbox": [1.0, 1.0, 1.0, 2.0], "score": 0.25},
    ]
    assert all(type(r["image_id"]) is int and type(r["category_id"]) is int for r in out)
    assert all(type(r["score"]) is float for r in out)
    with pytest.raises(ValueError):  # a prediction without its image id is a bug, not a silent drop
        coco_results(preds, ids[:2])
    short = {**preds[0], "scores": torch.tensor([0.75])}
    with pytest.raises(ValueError):  # a box without a score likewise
        coco_results([short], [1])
    plain = coco_results(preds[:1], [7])
    assert [r["category_id"] for r in plain] == [0, 2] and plain[0]["image_id"] == 7


def test_iou_metric_respects_labels_and_its_threshold() -> None:
    """Catches: the IoU threshold not passed on, labels ignored, and another box format."""
    metric = make_iou_metric(iou_threshold=0.3)
    assert metric.iou_threshold == 0.3 and metric.respect_labels and metric.box_format == "xyxy"
    # IoU of (10, 10, 30, 30) and (20, 20, 40, 40) is 100 / 700 = 0.142857 (RECIPES' worked example).
    pred = {
        "boxes": torch.tensor([[10.0, 10, 30, 30]]),
        "labels": torch.tensor([0]),
        "scores": torch.tensor([1.0]),
    }
    same = {"boxes": torch.tensor([[20.0, 20, 40, 40]]), "labels": torch.tensor([0])}
    metric = make_iou_metric(iou_threshold=0.1)
    metric.update([pred], [same])
    assert float(metric.compute()["iou"]) == pytest.approx(1 / 7, abs=1e-5)
    other = make_iou_metric(iou_threshold=0.1)
    other.update([pred], [{**same, "labels": torch.tensor([1])}])
    assert float(other.compute()["iou"]) == pytest.approx(0.0)
    assert make_iou_metric().iou_threshold == 0.5
