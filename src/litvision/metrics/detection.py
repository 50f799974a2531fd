"""COCO-style detection metrics: one place that builds the mAP metric and writes COCO results JSON.

`make_map_metric()` is torchmetrics' `MeanAveragePrecision` on the faster-coco-eval backend when
it is installed (same numbers as pycocotools' COCOeval, several times faster), pycocotools otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor


def map_backend() -> str:
    """'faster_coco_eval' when importable, else 'pycocotools' (the reference implementation)."""
    try:
        import faster_coco_eval  # noqa: F401
    except ImportError:
        return "pycocotools"
    return "faster_coco_eval"


def make_map_metric(class_metrics: bool = True, backend: str | None = None) -> Any:
    import numpy as np
    from torchmetrics.detection import MeanAveragePrecision

    # COCOeval's own float64 thresholds. torchmetrics' defaults come from float32 linspaces
    # (0.07 -> 0.0700000003), which moves recall points that sit exactly on a threshold and
    # shifts mAP by ~1e-4 from pycocotools' value.
    return MeanAveragePrecision(
        box_format="xyxy",
        iou_type="bbox",
        class_metrics=class_metrics,
        backend=backend or map_backend(),
        iou_thresholds=np.linspace(0.5, 0.95, 10).tolist(),
        rec_thresholds=np.linspace(0.0, 1.0, 101).tolist(),
    )


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
