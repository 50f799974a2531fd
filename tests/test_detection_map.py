"""The mAP litvision reports equals pycocotools' COCOeval run directly on the same data."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch

from litvision.metrics.detection import coco_results, make_map_metric, metric_targets


def synthetic_detections(num_images: int, num_classes: int, seed: int = 0, noise: float = 0.08):
    """Ground truth (some crowd boxes) and noisy predictions: misses, false positives, shifted boxes
    (each corner moved by `noise` times the box's size, standard deviation)."""
    rng = np.random.default_rng(seed)
    targets, preds = [], []
    for _ in range(num_images):
        n = int(rng.integers(1, 8))
        xy = rng.uniform(0, 400, size=(n, 2))
        wh = rng.uniform(8, 200, size=(n, 2))
        boxes = np.concatenate([xy, xy + wh], 1)
        labels = rng.integers(0, num_classes, size=n)
        crowd = (rng.random(n) < 0.1).astype(np.int64)
        targets.append(
            {
                "boxes": torch.tensor(boxes, dtype=torch.float32),
                "labels": torch.tensor(labels),
                "iscrowd": torch.tensor(crowd),
                "area": torch.tensor(wh.prod(1), dtype=torch.float32),
            }
        )
        keep = rng.random(n) > 0.15
        shift = rng.normal(0, noise, size=(n, 4)) * np.concatenate([wh, wh], 1)
        pb, pl = (boxes + shift)[keep], labels[keep].copy()
        flip = rng.random(len(pl)) < 0.1
        pl[flip] = rng.integers(0, num_classes, size=int(flip.sum()))
        k = int(rng.integers(0, 4))
        fxy = rng.uniform(0, 400, size=(k, 2))
        pb = np.concatenate([pb, np.concatenate([fxy, fxy + rng.uniform(8, 150, size=(k, 2))], 1)])
        pl = np.concatenate([pl, rng.integers(0, num_classes, size=k)])
        pb[:, 2:] = np.maximum(pb[:, 2:], pb[:, :2] + 1)
        preds.append(
            {
                "boxes": torch.tensor(pb, dtype=torch.float32),
                "scores": torch.tensor(rng.uniform(0.05, 1.0, size=len(pl)), dtype=torch.float32),
                "labels": torch.tensor(pl, dtype=torch.int64),
            }
        )
    return targets, preds


def coco_ground_truth(targets, num_classes: int) -> dict:
    images, anns = [], []
    for img_id, t in enumerate(targets):
        images.append({"id": img_id, "width": 640, "height": 640})
        for box, label, crowd, area in zip(
            t["boxes"].tolist(), t["labels"].tolist(), t["iscrowd"].tolist(), t["area"].tolist(), strict=False
        ):
            x1, y1, x2, y2 = box
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": img_id,
                    "category_id": label + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": area,
                    "iscrowd": crowd,
                }
            )
    cats = [{"id": c + 1, "name": str(c)} for c in range(num_classes)]
    return {"images": images, "annotations": anns, "categories": cats}


def pycocotools_stats(targets, preds, num_classes: int) -> np.ndarray:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = coco_ground_truth(targets, num_classes)
        gt.createIndex()
        results = coco_results(preds, range(len(preds)), category_ids=list(range(1, num_classes + 1)))
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("backend", ["faster_coco_eval", "pycocotools"])
def test_map_equals_pycocotools_cocoeval(backend: str) -> None:
    num_classes = 4
    targets, preds = synthetic_detections(60, num_classes)
    assert sum(int(t["iscrowd"].sum()) for t in targets) > 0, "the data must hold crowd boxes"

    metric = make_map_metric(class_metrics=True, backend=backend)
    for i in range(0, len(targets), 8):  # batches, as in validation
        metric.update(preds[i : i + 8], metric_targets(targets[i : i + 8]))
    ours = metric.compute()
    ref = pycocotools_stats(targets, preds, num_classes)

    assert 0.2 < ref[0] < 0.9, "a meaningful, non-trivial mAP"
    for key, idx in [
        ("map", 0),
        ("map_50", 1),
        ("map_75", 2),
        ("map_small", 3),
        ("map_medium", 4),
        ("map_large", 5),
        ("mar_1", 6),
        ("mar_10", 7),
        ("mar_100", 8),
    ]:
        assert float(ours[key]) == pytest.approx(ref[idx], abs=1e-4), key


def test_crowd_boxes_are_ignored_not_missed() -> None:
    """A crowd box nobody detects costs nothing; a detection on it is neither TP nor FP."""
    gt = [
        {
            "boxes": torch.tensor([[0.0, 0, 50, 50], [100.0, 100, 200, 200]]),
            "labels": torch.tensor([0, 0]),
            "iscrowd": torch.tensor([0, 1]),
        }
    ]
    exact = [
        {
            "boxes": torch.tensor([[0.0, 0, 50, 50]]),
            "scores": torch.tensor([0.9]),
            "labels": torch.tensor([0]),
        }
    ]
    on_crowd = [
        {
            "boxes": torch.tensor([[0.0, 0, 50, 50], [110.0, 110, 190, 190]]),
            "scores": torch.tensor([0.5, 0.9]),
            "labels": torch.tensor([0, 0]),
        }
    ]
    for pred in (exact, on_crowd):
        metric = make_map_metric(class_metrics=False)
        metric.update(pred, metric_targets(gt))
        assert float(metric.compute()["map_50"]) == pytest.approx(1.0)
