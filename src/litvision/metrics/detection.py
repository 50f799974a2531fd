"""COCO-style detection metrics: one place that builds the mAP metric and writes COCO results JSON.

`make_map_metric()` is torchmetrics' `MeanAveragePrecision` on the faster-coco-eval backend when
it is installed (same numbers as pycocotools' COCOeval, several times faster), pycocotools otherwise.
`compute_map(metric)` runs it without faster-coco-eval's 12-line summary in the log (once per
validation, and again per class); `coco_summary_lines(result)` is that summary, written once per test.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

# COCOeval's own float64 grids (pycocotools cocoeval.py Params.setDetParams).
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def map_backend() -> str:
    """'faster_coco_eval' when importable, else 'pycocotools' (the reference implementation)."""
    try:
        import faster_coco_eval  # noqa: F401
    except ImportError:
        return "pycocotools"
    return "faster_coco_eval"


def make_map_metric(class_metrics: bool = True, backend: str | None = None) -> Any:
    from torchmetrics.detection import MeanAveragePrecision

    # COCOeval's own float64 thresholds. torchmetrics' defaults come from float32 linspaces
    # (0.07 -> 0.0700000003), which moves recall points that sit exactly on a threshold and
    # shifts mAP by ~1e-4 from pycocotools' value.
    return MeanAveragePrecision(
        box_format="xyxy",
        iou_type="bbox",
        class_metrics=class_metrics,
        backend=backend or map_backend(),
        iou_thresholds=IOU_THRESHOLDS.tolist(),
        rec_thresholds=RECALL_POINTS.tolist(),
    )


@contextlib.contextmanager
def _quiet_coco_eval() -> Iterator[None]:
    # faster-coco-eval logs its summary with logger.info (torchmetrics only silences stdout):
    # 12 lines in train.log per validation, and 12 more per class with class_metrics.
    coco_log = logging.getLogger("faster_coco_eval")
    level = coco_log.level
    coco_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        coco_log.setLevel(level)


def compute_map(metric: Any, extended: bool = False) -> dict[str, Any]:
    """`metric.compute()` with COCOeval's printed summary kept out of the log.

    extended: also return COCOeval's `precision` array [T, R, K, A, M] (IoU thresholds, recall
    points, classes as in `result["classes"]`, areas all/small/medium/large, max detections 1/10/100),
    the very array its `map_50` averages; `detection_report` reads per-class AP and the PR curves from it.
    """
    was = metric.extended_summary
    metric.extended_summary = extended
    try:
        with _quiet_coco_eval():
            res = metric.compute()
    finally:
        metric.extended_summary = was
    # The IoU matrices are per image and class: large, and nothing here reads them.
    res.pop("ious", None)
    return res


_SUMMARY_ROWS = (  # COCOeval.summarize()'s twelve lines: (AP or AR, IoU, area, max detections, key)
    ("Average Precision  (AP)", "0.50:0.95", "all", 100, "map"),
    ("Average Precision  (AP)", "0.50", "all", 100, "map_50"),
    ("Average Precision  (AP)", "0.75", "all", 100, "map_75"),
    ("Average Precision  (AP)", "0.50:0.95", "small", 100, "map_small"),
    ("Average Precision  (AP)", "0.50:0.95", "medium", 100, "map_medium"),
    ("Average Precision  (AP)", "0.50:0.95", "large", 100, "map_large"),
    ("Average Recall     (AR)", "0.50:0.95", "all", 1, "mar_1"),
    ("Average Recall     (AR)", "0.50:0.95", "all", 10, "mar_10"),
    ("Average Recall     (AR)", "0.50:0.95", "all", 100, "mar_100"),
    ("Average Recall     (AR)", "0.50:0.95", "small", 100, "mar_small"),
    ("Average Recall     (AR)", "0.50:0.95", "medium", 100, "mar_medium"),
    ("Average Recall     (AR)", "0.50:0.95", "large", 100, "mar_large"),
)


def coco_summary_lines(result: Mapping[str, Any]) -> list[str]:
    """COCOeval's printed summary, from a MeanAveragePrecision result (-1: no objects of that size)."""
    return [
        f" {kind} @[ IoU={iou:<9} | area={area:>6} | maxDets={dets:>3} ] = {float(result[key]):0.3f}"
        for kind, iou, area, dets, key in _SUMMARY_ROWS
        if key in result
    ]


def make_iou_metric(iou_threshold: float = 0.5) -> Any:
    """Mean IoU of confident predictions with same-label ground truth overlapping by >= iou_threshold."""
    from torchmetrics.detection import IntersectionOverUnion

    return IntersectionOverUnion(box_format="xyxy", iou_threshold=iou_threshold, respect_labels=True)


def metric_targets(targets: Sequence[Mapping[str, Any]]) -> list[dict[str, Tensor]]:
    """Dataset targets -> what MeanAveragePrecision takes (plain tensors; crowd/difficult as iscrowd)."""
    out = []
    for t in targets:
        boxes = torch.as_tensor(t["boxes"]).as_subclass(Tensor).float().reshape(-1, 4)
        d = {"boxes": boxes, "labels": torch.as_tensor(t["labels"]).long().reshape(-1)}
        if "iscrowd" in t:
            d["iscrowd"] = torch.as_tensor(t["iscrowd"]).long().reshape(-1)
        if "area" in t:
            # COCO's size ranges use the annotation's area (the mask's for COCO), not the box's.
            d["area"] = torch.as_tensor(t["area"]).float().reshape(-1)
        out.append(d)
    return out


def coco_results(
    predictions: Sequence[Mapping[str, Tensor]],
    image_ids: Sequence[int],
    category_ids: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """Predictions (XYXY boxes, contiguous 0-based labels) -> COCO results JSON entries.

    `category_ids[label]` maps labels back to the dataset's own ids (COCO: 1..90 with gaps);
    without it the label itself is written.
    """
    out: list[dict[str, Any]] = []
    for pred, image_id in zip(predictions, image_ids, strict=True):
        boxes = torch.as_tensor(pred["boxes"]).reshape(-1, 4).tolist()
        for (x1, y1, x2, y2), score, label in zip(
            boxes, pred["scores"].tolist(), pred["labels"].tolist(), strict=True
        ):
            cat = int(category_ids[label]) if category_ids is not None else int(label)
            out.append(
                {
                    "image_id": int(image_id),
                    "category_id": cat,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(score),
                }
            )
    return out
