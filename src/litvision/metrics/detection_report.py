"""What people read first about a detector: per-class precision-recall curves, F1 against confidence,
a confusion matrix at IoU 0.5 with a background row and column, and a per-class AP table.

AP and the PR curves are read from the very COCOeval `precision` array that produced the reported
mAP (`compute_map(metric, extended=True)`, see metrics/detection.py), so the table's AP50 averaged
over classes is `map_50`, and each PR curve's area (its mean over the 101 recall points) is the
class's AP50. The F1 curves and the confusion matrix need COCOeval's per-detection matches, which
torchmetrics does not return: they come from pycocotools' COCOeval run here on the same detections
with the same IoU thresholds, recall points, crowd handling and 100 detections per image and class.

    res = compute_map(task.test_map, extended=True)
    report = detection_report(preds, targets, class_names, conf_thresh=0.3, evaluation=res)
    report.per_class            # {"circle": {"ap": .., "ap_50": .., "precision": .., ...}, ...}
    pr_curve_figure(report); f1_curve_figure(report); confusion_figure(report)

Without `evaluation` the report runs `make_map_metric` on `preds`/`targets` itself.

Confusion matrix (rows: true class, columns: predicted; last row and column: background), for the
detections scoring at least `conf_thresh`:
  1. COCOeval's IoU-0.5 matches of the same class fill the diagonal, so diagonal = true positives;
  2. the detections and objects left unmatched are paired across classes, greedily by IoU >= 0.5
     (highest first): a detection of class j on an object of class i counts in (i, j);
  3. detections still unmatched count in (background, j) (false positives), objects still unmatched
     in (i, background) (missed). Crowd objects, and detections COCOeval ignores on them, are left out.
Row i then sums to the class's objects, column j to its confident detections.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from litvision.metrics.detection import IOU_THRESHOLDS, RECALL_POINTS

MAX_DETS = [1, 10, 100]
CONFIDENCES = np.linspace(0.0, 1.0, 101)


@dataclass
class ClassMatches:
    """One class's confident-enough matching at IoU 0.5 in COCOeval's order (score descending)."""

    scores: np.ndarray  # [D] scores of the class's non-ignored detections, descending
    tp: np.ndarray  # [D] bool, matched to an object of the class at IoU >= 0.5
    num_gt: int  # non-crowd objects of the class


@dataclass
class DetectionReport:
    class_names: list[str]
    conf_thresh: float
    matches: list[ClassMatches]
    ap: np.ndarray  # [K] AP@[.5:.95] per class (-1: no objects of the class)
    ap_50: np.ndarray  # [K] AP@.5 per class
    pr_precision: np.ndarray  # [K, 101] COCO's interpolated precision at IoU 0.5 at RECALL_POINTS
    confusion: np.ndarray  # [K+1, K+1] counts, last row/column background
    per_class: dict[str, dict[str, float | int | None]] = field(default_factory=dict)

    def f1_curves(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Precision, recall and F1 [K, len(CONFIDENCES)] of detections scoring >= each confidence."""
        k = len(self.matches)
        p, r = np.zeros((k, len(CONFIDENCES))), np.zeros((k, len(CONFIDENCES)))
        for i, m in enumerate(self.matches):
            p[i], r[i] = _precision_recall_at(m, CONFIDENCES)
        f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)
        return p, r, f1


def _precision_recall_at(m: ClassMatches, confidences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # scores are descending: the detections kept at confidence c are the first n of them.
    kept = np.searchsorted(-m.scores, -np.asarray(confidences), side="right")
    tp_cum = np.concatenate([[0], np.cumsum(m.tp)])
    tp = tp_cum[kept]
    precision = np.where(kept > 0, tp / np.maximum(kept, 1), 1.0 if m.num_gt == 0 else 0.0)
    recall = tp / m.num_gt if m.num_gt else np.zeros(len(kept))
    return precision, recall


def _coco_datasets(
    preds: Sequence[Mapping[str, Tensor]], targets: Sequence[Mapping[str, Tensor]], num_classes: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """litvision predictions/targets (XYXY, labels 0..C-1) -> a COCO ground truth dict and results list."""
    images, anns, results = [], [], []
    for img_id, (p, t) in enumerate(zip(preds, targets, strict=True)):
        images.append({"id": img_id})
        boxes = torch.as_tensor(t["boxes"]).reshape(-1, 4).double().tolist()
        labels = torch.as_tensor(t["labels"]).reshape(-1).tolist()
        crowd = torch.as_tensor(t.get("iscrowd", torch.zeros(len(labels)))).reshape(-1).tolist()
        areas = t.get("area")
        areas = torch.as_tensor(areas).reshape(-1).tolist() if areas is not None else [None] * len(labels)
        for (x1, y1, x2, y2), label, c, area in zip(boxes, labels, crowd, areas, strict=True):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": img_id,
                    "category_id": int(label) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    # As torchmetrics: a given positive area (COCO's mask area) wins over the box's.
                    "area": float(area) if area is not None and area > 0 else (x2 - x1) * (y2 - y1),
                    "iscrowd": int(c),
                }
            )
        pb = torch.as_tensor(p["boxes"]).reshape(-1, 4).double().tolist()
        for (x1, y1, x2, y2), s, label in zip(
            pb,
            torch.as_tensor(p["scores"]).reshape(-1).tolist(),
            torch.as_tensor(p["labels"]).reshape(-1).tolist(),
            strict=True,
        ):
            results.append(
                {
                    "id": len(results) + 1,
                    "image_id": img_id,
                    "category_id": int(label) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "score": float(s),
                }
            )
    cats = [{"id": c + 1, "name": str(c)} for c in range(num_classes)]
    return {"images": images, "annotations": anns, "categories": cats}, results


def _coco_eval(gt: dict[str, Any], results: list[dict[str, Any]]) -> Any:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = COCO()
        # loadRes would renumber ids and recompute areas; the results already hold both.
        coco_dt.dataset = {"images": gt["images"], "categories": gt["categories"], "annotations": results}
        coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
        ev.params.iouThrs = IOU_THRESHOLDS
        ev.params.recThrs = RECALL_POINTS
        ev.params.maxDets = MAX_DETS
        ev.evaluate()
        ev.accumulate()
    return ev


def _per_class_ap(evaluation: Mapping[str, Any], k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AP@[.5:.95], AP@.5 [K] (-1: no objects of the class) and the IoU-0.5 PR curves [K, 101] read
    from a MeanAveragePrecision result's COCOeval `precision` [T, R, K', A, M] (see compute_map)."""
    ap, ap_50 = np.full(k, -1.0), np.full(k, -1.0)
    pr = np.zeros((k, len(RECALL_POINTS)))
    if "precision" not in evaluation:  # no images at all: torchmetrics returns -1 stats only
        return ap, ap_50, pr
    precision = torch.as_tensor(evaluation["precision"]).double().numpy()
    if precision.shape[:2] != (len(IOU_THRESHOLDS), len(RECALL_POINTS)):
        raise ValueError(
            f"the mAP result's precision is {tuple(precision.shape)}: build the metric with make_map_metric, "
            f"whose {len(IOU_THRESHOLDS)} IoU thresholds and {len(RECALL_POINTS)} recall points the report reads"
        )
    t50 = int(np.argmin(np.abs(IOU_THRESHOLDS - 0.5)))
    classes = torch.as_tensor(evaluation["classes"]).reshape(-1).tolist()
    for idx, c in enumerate(classes):
        if not 0 <= c < k:
            continue
        # Area "all", the last (100) detections cap: COCOeval.summarize()'s map and map_50 entries.
        # A class without objects is -1 throughout and left out, as summarize() leaves it out.
        p_k = precision[:, :, idx, 0, -1]
        if (p_k > -1).any():
            ap[c] = float(p_k[p_k > -1].mean())
            ap_50[c] = float(p_k[t50][p_k[t50] > -1].mean())
            pr[c] = np.clip(p_k[t50], 0, None)
    return ap, ap_50, pr


def evaluate(
    preds: Sequence[Mapping[str, Tensor]], targets: Sequence[Mapping[str, Tensor]]
) -> dict[str, Any]:
    """The mAP result litvision reports (make_map_metric), with COCOeval's precision array."""
    from litvision.metrics.detection import compute_map, make_map_metric

    metric = make_map_metric(class_metrics=False)
    metric.update(
        [{k: torch.as_tensor(p[k]) for k in ("boxes", "scores", "labels")} for p in preds],
        [{k: torch.as_tensor(v) for k, v in t.items()} for t in targets],
    )
    return compute_map(metric, extended=True)


def detection_report(
    preds: Sequence[Mapping[str, Tensor]],
    targets: Sequence[Mapping[str, Tensor]],
    class_names: Sequence[str],
    conf_thresh: float = 0.25,
    evaluation: Mapping[str, Any] | None = None,
) -> DetectionReport:
    """Curves, confusion matrix and per-class table of `preds` against `targets` (see the module docstring).

    evaluation: `compute_map(metric, extended=True)` of the metric that holds these same detections
    (AP and PR curves are read from it); computed here when not given.
    """
    k = len(class_names)
    if evaluation is None:
        evaluation = evaluate(preds, targets)
    ap, ap_50, pr = _per_class_ap(evaluation, k)
    gt, results = _coco_datasets(preds, targets, k)
    ev = _coco_eval(gt, results)
    t50 = int(np.argmin(np.abs(IOU_THRESHOLDS - 0.5)))
    n_area, n_img = len(ev.params.areaRng), len(ev.params.imgIds)
    cat_ids = list(ev.params.catIds)

    matches: list[ClassMatches] = []
    # (image, detection id) -> matched object id, for the confident detections of step 1.
    matched_pairs: dict[int, int] = {}
    ignored_dets: set[int] = set()
    ignored_gts: set[int] = {a["id"] for a in gt["annotations"] if a["iscrowd"]}
    for c in range(k):
        kk = cat_ids.index(c + 1)
        scores, tp, num_gt = [], [], 0
        for i in range(n_img):
            e = ev.evalImgs[kk * n_area * n_img + 0 * n_img + i]  # area index 0: "all"
            if e is None:
                continue
            ig = np.asarray(e["dtIgnore"])[t50].astype(bool) if len(e["dtIds"]) else np.zeros(0, bool)
            dtm = np.asarray(e["dtMatches"])[t50] if len(e["dtIds"]) else np.zeros(0)
            num_gt += int((np.asarray(e["gtIgnore"]) == 0).sum())
            for did, score, m, ignore in zip(e["dtIds"], e["dtScores"], dtm, ig, strict=True):
                if ignore:
                    ignored_dets.add(did)
                    continue
                scores.append(score)
                tp.append(m > 0)
                if m > 0 and score >= conf_thresh:
                    matched_pairs[did] = int(m)
        order = np.argsort(-np.asarray(scores, dtype=float), kind="mergesort")
        matches.append(
            ClassMatches(np.asarray(scores, dtype=float)[order], np.asarray(tp, dtype=bool)[order], num_gt)
        )

    confusion = _confusion(gt, results, ev, matched_pairs, ignored_dets, ignored_gts, conf_thresh, k)
    report = DetectionReport(list(class_names), conf_thresh, matches, ap, ap_50, pr, confusion)
    p_at, r_at = (
        np.array([_precision_recall_at(m, [conf_thresh])[0][0] for m in matches]),
        np.array([_precision_recall_at(m, [conf_thresh])[1][0] for m in matches]),
    )
    for c, name in enumerate(class_names):
        f1 = 2 * p_at[c] * r_at[c] / (p_at[c] + r_at[c]) if p_at[c] + r_at[c] > 0 else 0.0
        report.per_class[name] = {
            "ap": None if ap[c] < 0 else round(float(ap[c]), 6),
            "ap_50": None if ap_50[c] < 0 else round(float(ap_50[c]), 6),
            "precision": round(float(p_at[c]), 6),
            "recall": round(float(r_at[c]), 6),
            "f1": round(float(f1), 6),
            "objects": int(matches[c].num_gt),
            "detections": int(confusion[:, c].sum()),
        }
    return report


def _confusion(
    gt: dict[str, Any],
    results: list[dict[str, Any]],
    ev: Any,
    matched_pairs: dict[int, int],
    ignored_dets: set[int],
    ignored_gts: set[int],
    conf_thresh: float,
    k: int,
) -> np.ndarray:
    from torchvision.ops import box_iou

    # The detections COCOeval looked at (top 100 per image and class); the rest never count.
    evaluated: set[int] = set()
    for e in ev.evalImgs:
        if e is not None and e["aRng"] == ev.params.areaRng[0]:
            evaluated.update(e["dtIds"])
    cm = np.zeros((k + 1, k + 1), dtype=np.int64)
    gts_by_image: dict[int, list[dict[str, Any]]] = {}
    for a in gt["annotations"]:
        if a["id"] not in ignored_gts:
            gts_by_image.setdefault(a["image_id"], []).append(a)
    dets_by_image: dict[int, list[dict[str, Any]]] = {}
    for d in results:
        if d["score"] >= conf_thresh and d["id"] in evaluated and d["id"] not in ignored_dets:
            dets_by_image.setdefault(d["image_id"], []).append(d)
    for img in gt["images"]:
        gts = gts_by_image.get(img["id"], [])
        dets = dets_by_image.get(img["id"], [])
        used_gt = set()
        free_dets = []
        for d in dets:  # step 1: COCOeval's same-class matches
            g = matched_pairs.get(d["id"])
            if g is not None:
                cm[d["category_id"] - 1, d["category_id"] - 1] += 1
                used_gt.add(g)
            else:
                free_dets.append(d)
        free_gts = [g for g in gts if g["id"] not in used_gt]
        if free_dets and free_gts:  # step 2: across classes, by IoU
            xyxy = lambda b: [b[0], b[1], b[0] + b[2], b[1] + b[3]]  # noqa: E731
            iou = box_iou(
                torch.tensor([xyxy(d["bbox"]) for d in free_dets], dtype=torch.float64),
                torch.tensor([xyxy(g["bbox"]) for g in free_gts], dtype=torch.float64),
            ).numpy()
            pairs = sorted(
                (
                    (iou[i, j], i, j)
                    for i in range(len(free_dets))
                    for j in range(len(free_gts))
                    if iou[i, j] >= 0.5
                ),
                reverse=True,
            )
            taken_d, taken_g = set(), set()
            for _, i, j in pairs:
                if i in taken_d or j in taken_g:
                    continue
                taken_d.add(i)
                taken_g.add(j)
                cm[free_gts[j]["category_id"] - 1, free_dets[i]["category_id"] - 1] += 1
            free_dets = [d for i, d in enumerate(free_dets) if i not in taken_d]
            free_gts = [g for j, g in enumerate(free_gts) if j not in taken_g]
        for d in free_dets:  # step 3: background
            cm[k, d["category_id"] - 1] += 1
        for g in free_gts:
            cm[g["category_id"] - 1, k] += 1
    return cm


# -- figures ----------------------------------------------------------------------------------------
def pr_curve_figure(report: DetectionReport) -> Any:
    """Precision against recall at IoU 0.5 per class (COCO's interpolated curve, what AP@.5 averages)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    for c, name in enumerate(report.class_names):
        if report.ap_50[c] >= 0:
            ax.plot(RECALL_POINTS, report.pr_precision[c], label=f"{name} AP50 {report.ap_50[c]:.3f}")
    valid = report.ap_50[report.ap_50 >= 0]
    if len(valid):
        ax.plot(
            RECALL_POINTS,
            report.pr_precision[report.ap_50 >= 0].mean(0),
            color="black",
            linewidth=2.5,
            label=f"all classes mAP50 {valid.mean():.3f}",
        )
    ax.set(
        xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="precision-recall, IoU 0.5"
    )
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


def f1_curve_figure(report: DetectionReport) -> Any:
    """F1 against the confidence threshold per class, IoU 0.5; the all-class curve marks its best threshold."""
    from matplotlib.figure import Figure

    _, _, f1 = report.f1_curves()
    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    has = [c for c, m in enumerate(report.matches) if m.num_gt]
    for c in has:
        ax.plot(CONFIDENCES, f1[c], label=report.class_names[c])
    if has:
        mean = f1[has].mean(0)
        best = int(mean.argmax())
        ax.plot(
            CONFIDENCES,
            mean,
            color="black",
            linewidth=2.5,
            label=f"all classes {mean[best]:.2f} at {CONFIDENCES[best]:.2f}",
        )
    ax.set(
        xlabel="confidence", ylabel="F1", xlim=(0, 1), ylim=(0, 1.02), title="F1 against confidence, IoU 0.5"
    )
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


def confusion_figure(report: DetectionReport) -> Any:
    from litvision.utils.plots import confusion_matrix_figure

    fig = confusion_matrix_figure(torch.as_tensor(report.confusion), [*report.class_names, "background"])
    fig.suptitle(f"IoU 0.5, confidence >= {report.conf_thresh:g}", fontsize=9)
    return fig


def metric_states(metric: Any) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]]]:
    """The predictions and targets a torchmetrics MeanAveragePrecision has accumulated (box mode), XYXY.

    The metric keeps its boxes as COCO's XYWH whatever its `box_format` (torchmetrics'
    detection/helpers.py `_get_safe_item_values` converts them on update); read as XYXY they are
    other boxes, and the per-class AP came out 5-10x below map_50 on a trained yolov1_shapes.
    """
    from torchvision.ops import box_convert

    def xyxy(boxes: Tensor) -> Tensor:
        return box_convert(boxes.cpu().reshape(-1, 4), in_fmt="xywh", out_fmt="xyxy")

    preds = [
        {"boxes": xyxy(b), "scores": s.cpu(), "labels": lab.cpu()}
        for b, s, lab in zip(
            metric.detection_box, metric.detection_scores, metric.detection_labels, strict=True
        )
    ]
    targets = [
        {"boxes": xyxy(b), "labels": lab.cpu(), "iscrowd": c.cpu(), "area": a.cpu()}
        for b, lab, c, a in zip(
            metric.groundtruth_box,
            metric.groundtruth_labels,
            metric.groundtruth_crowds,
            metric.groundtruth_area,
            strict=True,
        )
    ]
    return preds, targets
