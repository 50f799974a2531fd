"""Detection benchmarks: (1) COCO mAP time, litvision's metric path vs pycocotools' COCOeval on the same
~5,000 images x ~7 boxes, values checked identical; (2) the shapes experiment's mAP@0.5 and wall time.

    python -m bench detection                      # both (the training part takes a few minutes)
    LITVISION_BENCH_TRAIN=0 python -m bench detection   # the mAP timing only

Ratio target: litvision / pycocotools <= 0.3.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

NUM_IMAGES = 5000
BOXES_PER_IMAGE = 7
NUM_CLASSES = 20


def synthetic(num_images: int = NUM_IMAGES, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Ground truth (~7 boxes an image, 5% crowd) and perturbed predictions with misses and false positives."""
    rng = np.random.default_rng(seed)
    targets, preds = [], []
    for _ in range(num_images):
        n = int(rng.integers(BOXES_PER_IMAGE - 3, BOXES_PER_IMAGE + 4))
        xy = rng.uniform(0, 500, size=(n, 2))
        wh = rng.uniform(10, 250, size=(n, 2))
        boxes = np.concatenate([xy, xy + wh], 1)
        labels = rng.integers(0, NUM_CLASSES, size=n)
        targets.append(
            {
                "boxes": torch.tensor(boxes, dtype=torch.float32),
                "labels": torch.tensor(labels),
                "iscrowd": torch.tensor((rng.random(n) < 0.05).astype(np.int64)),
                "area": torch.tensor(wh.prod(1), dtype=torch.float32),
            }
        )
        keep = rng.random(n) > 0.1
        noisy = (boxes + rng.normal(0, 0.1, size=(n, 4)) * np.concatenate([wh, wh], 1))[keep]
        k = int(rng.integers(0, 5))
        fxy = rng.uniform(0, 500, size=(k, 2))
        fp = np.concatenate([fxy, fxy + rng.uniform(10, 200, size=(k, 2))], 1)
        pb = np.concatenate([noisy, fp])
        pb[:, 2:] = np.maximum(pb[:, 2:], pb[:, :2] + 1)
        pl = np.concatenate([labels[keep], rng.integers(0, NUM_CLASSES, size=k)])
        preds.append(
            {
                "boxes": torch.tensor(pb, dtype=torch.float32),
                "scores": torch.tensor(rng.uniform(0.05, 1, size=len(pl)), dtype=torch.float32),
                "labels": torch.tensor(pl),
            }
        )
    return targets, preds


def time_litvision(targets: list[dict], preds: list[dict]) -> tuple[float, dict]:
    from litvision.metrics.detection import make_map_metric, metric_targets

    started = time.perf_counter()
    metric = make_map_metric(class_metrics=False)
    for i in range(0, len(targets), 16):  # updated batch by batch, as in validation
        metric.update(preds[i : i + 16], metric_targets(targets[i : i + 16]))
    res = metric.compute()
    return time.perf_counter() - started, {k: float(res[k]) for k in ("map", "map_50", "map_75")}


def time_pycocotools(targets: list[dict], preds: list[dict]) -> tuple[float, dict]:
    """The reference: COCO ground truth + results JSON -> COCOeval, from the same tensors."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from litvision.metrics.detection import coco_results

    started = time.perf_counter()
    images, anns = [], []
    for img_id, t in enumerate(targets):
        images.append({"id": img_id})
        for (x1, y1, x2, y2), c, crowd, area in zip(
            t["boxes"].tolist(), t["labels"].tolist(), t["iscrowd"].tolist(), t["area"].tolist(), strict=False
        ):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": img_id,
                    "category_id": c + 1,
                    "iscrowd": crowd,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": area,
                }
            )
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {
            "images": images,
            "annotations": anns,
            "categories": [{"id": c + 1, "name": str(c)} for c in range(NUM_CLASSES)],
        }
        gt.createIndex()
        dt = gt.loadRes(coco_results(preds, range(len(preds)), list(range(1, NUM_CLASSES + 1))))
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return time.perf_counter() - started, {"map": ev.stats[0], "map_50": ev.stats[1], "map_75": ev.stats[2]}


def bench_map() -> dict[str, Any]:
    from litvision.metrics.detection import map_backend

    targets, preds = synthetic()
    time_litvision(targets[:50], preds[:50])  # import and first-call costs are not the metric's speed
    t_ref, ref = time_pycocotools(targets, preds)
    t_ours, ours = time_litvision(targets, preds)
    return {
        "images": len(targets),
        "gt_boxes": sum(len(t["labels"]) for t in targets),
        "pred_boxes": sum(len(p["labels"]) for p in preds),
        "backend": map_backend(),
        "litvision_s": round(t_ours, 2),
        "pycocotools_s": round(t_ref, 2),
        "ratio": round(t_ours / t_ref, 3),
        "target_ratio": 0.3,
        "values_litvision": ours,
        "values_pycocotools": ref,
        "identical_1e-6": all(abs(ours[k] - ref[k]) < 1e-6 for k in ours),
    }


def bench_shapes(experiment: str = "yolov1_shapes") -> dict[str, Any]:
    """Train the shapes experiment as `make train` would (2 threads, as on 2 CPU cores)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import compose_cfg

    from litvision.train import train

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_cfg(
            [
                f"experiment={experiment}",
                f"paths.data_dir={tmp}/data",
                "logger=csv",
                "callbacks.rich_progress_bar=null",
            ],
            Path(tmp) / "runs",
        )
        started = time.perf_counter()
        summary = train(cfg)
        wall = time.perf_counter() - started
    return {
        "experiment": experiment,
        "test_map_50": round(summary["test"].get("test/map_50", float("nan")), 4),
        "test_map": round(summary["test"].get("test/map", float("nan")), 4),
        "best_val_map_50": summary["best_score"],
        "epochs": summary["epochs_completed"],
        "train_wall_s": round(wall, 1),
        "threads": torch.get_num_threads(),
    }


def run() -> dict[str, Any]:
    out: dict[str, Any] = {"map_timing": bench_map()}
    if os.environ.get("LITVISION_BENCH_TRAIN", "1") != "0":
        out["shapes_training"] = bench_shapes()
    return out
