"""Detection PR curves, F1 against confidence and the IoU-0.5 confusion matrix: hand-checked numbers
that agree with the mAP evaluator, and their images in a yolov1_shapes run folder."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_cfg
from test_detection_map import synthetic_detections

from litvision.metrics.detection import RECALL_POINTS, make_map_metric
from litvision.metrics.detection_report import (
    CONFIDENCES,
    ClassMatches,
    DetectionReport,
    _precision_recall_at,
    confusion_figure,
    detection_report,
    f1_curve_figure,
    pr_curve_figure,
)

CLASSES = ["cat", "dog"]


def _det(boxes, scores, labels) -> dict:
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "scores": torch.tensor(scores, dtype=torch.float32),
        "labels": torch.tensor(labels, dtype=torch.int64),
    }


def _gt(boxes, labels, crowd=None) -> dict:
    t = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels)}
    t["iscrowd"] = torch.tensor(crowd if crowd is not None else [0] * len(labels))
    return t


def hand_made() -> tuple[list[dict], list[dict]]:
    """Five images; every detection's fate is worked out by hand in the comments (IoU threshold 0.5)."""
    targets = [
        # cat A, dog B, a crowd of cats (ignored, as are detections on it)
        _gt([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 70, 70]], [0, 1, 0], crowd=[0, 0, 1]),
        _gt([[0, 0, 20, 20], [30, 30, 50, 50]], [1, 1]),  # dogs D, E
        _gt([[0, 0, 30, 30]], [0]),  # cat F
        _gt([[0, 0, 10, 10]], [0]),  # cat G
        _gt([[0, 0, 10, 10]], [0]),  # cat H
    ]
    preds = [
        _det(
            [[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 40, 40], [51, 51, 70, 70], [80, 80, 90, 90]],
            # cat on A (TP), dog on A (IoU .81, A already taken: background), dog on B (TP),
            # cat on the crowd (ignored), cat on nothing below the confidence threshold
            [0.9, 0.8, 0.7, 0.6, 0.2],
            [0, 1, 1, 0, 0],
        ),
        _det(
            [[0, 0, 20, 20], [60, 60, 70, 70]], [0.95, 0.5], [1, 0]
        ),  # dog on D (TP), cat on nothing; E missed
        _det([[0, 0, 30, 28]], [0.85], [1]),  # dog on cat F (IoU .93): a cat seen as a dog
        # COCO matches G to the higher-scoring cat (IoU .9), not to the dog that overlaps it more
        # (IoU 1): the dog is background, not a cat seen as a dog.
        _det([[0, 0, 10, 9], [0, 0, 10, 10]], [0.9, 0.8], [0, 1]),
        # cat on H at IoU .53: a match at 0.5, a miss from 0.55 on (AP50 read at another IoU differs).
        _det([[0, 0, 10, 5.3]], [0.75], [0]),
    ]
    return preds, targets


def test_hand_made_case_numbers() -> None:
    """Catches confusion entries off the COCO matches (e.g. the crowd detection counted, a cat-as-dog
    missed), sums that do not close, precision/recall at the wrong threshold, AP50 read at IoU 0.55
    (cat H is matched at .53) or the PR curve averaged over IoU 0.5:0.95."""
    preds, targets = hand_made()
    report = detection_report(preds, targets, CLASSES, conf_thresh=0.25)
    #                       pred cat, dog, background
    expected = np.array([[3, 1, 0], [0, 2, 1], [1, 2, 0]])  # true cat / dog / background
    np.testing.assert_array_equal(report.confusion, expected)
    cat, dog = report.per_class["cat"], report.per_class["dog"]
    assert (cat["objects"], cat["detections"], dog["objects"], dog["detections"]) == (4, 4, 3, 5)
    assert cat["precision"] == 0.75 and cat["recall"] == 0.75
    assert dog["precision"] == 0.4 and dog["recall"] == pytest.approx(2 / 3, abs=1e-6)
    # COCO's 101-point AP at IoU 0.5. cat: .9 A, .9 G, .75 H (TPs), .5 and .2 on nothing: precision 1
    # up to recall 3/4 -> 76 of 101 points. dog: 1 up to recall 1/3 (34 points), then 2/5 up to 2/3
    # (33 points).
    assert report.ap_50[0] == pytest.approx(76 / 101)
    assert report.ap_50[1] == pytest.approx((34 + 0.4 * 33) / 101)
    assert cat["ap_50"] == pytest.approx(76 / 101, abs=1e-6)
    # The PR curve is that IoU-0.5 curve: cat's is 1 up to recall .75 and 0 beyond (H is unmatched
    # from IoU 0.55, so any average over IoUs lowers it).
    np.testing.assert_allclose(report.pr_precision[0], np.where(RECALL_POINTS <= 0.75 + 1e-9, 1.0, 0.0))
    # The F1 curve at the threshold equals the table's F1.
    _, _, f1 = report.f1_curves()
    assert f1[1, 25] == pytest.approx(dog["f1"], abs=1e-6)
    # The matched detections in each class are the diagonal at that threshold.
    for c, m in enumerate(report.matches):
        assert int(m.tp[m.scores >= 0.25].sum()) == report.confusion[c, c]


def _evaluator(preds, targets) -> dict:
    metric = make_map_metric(class_metrics=True)
    metric.update(preds, targets)
    return metric.compute()


def _pycocotools_ap50_per_class(preds, targets, num_classes: int) -> np.ndarray:
    """AP50 of each class from pycocotools' COCOeval restricted to that class (summarize()'s stats[1])."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    from test_detection_map import coco_ground_truth

    from litvision.metrics.detection import coco_results

    full = [{**t, "area": t.get("area", _box_area(t["boxes"]))} for t in targets]
    out = []
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = coco_ground_truth(full, num_classes)
        gt.createIndex()
        dt = gt.loadRes(coco_results(preds, range(len(preds)), category_ids=list(range(1, num_classes + 1))))
        for c in range(num_classes):
            ev = COCOeval(gt, dt, "bbox")
            ev.params.catIds = [c + 1]
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            out.append(ev.stats[1])
    return np.array(out)


def _box_area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def test_hand_made_case_agrees_with_the_map_evaluator() -> None:
    """AP per class, AP50 per class against pycocotools run class by class, and their mean against
    map_50. Catches: AP50 read at IoU 0.55 (cat H matches at .53); AP averaged over IoU 0.5:0.7
    instead of 0.5:0.95."""
    preds, targets = hand_made()
    report = detection_report(preds, targets, CLASSES)
    res = _evaluator(preds, targets)
    np.testing.assert_allclose(report.ap, res["map_per_class"].numpy(), atol=1e-6)
    np.testing.assert_allclose(report.ap_50, _pycocotools_ap50_per_class(preds, targets, 2), atol=1e-6)
    assert report.ap_50.mean() == pytest.approx(float(res["map_50"]), abs=1e-6)


def test_random_detections_agree_with_the_map_evaluator() -> None:
    """Many images with crowds, misses, relabels and false positives: per-class AP and AP50 equal the
    evaluator's and pycocotools' class by class. Catches: AP50 read at IoU 0.55; AP read at area
    "small" instead of "all"; a background column that drops a false positive (rows/columns must close)."""
    # Shifts of 15% of the box size: every class has matches between IoU 0.5 and 0.55.
    targets, preds = synthetic_detections(num_images=40, num_classes=4, seed=1, noise=0.15)
    report = detection_report(preds, targets, ["a", "b", "c", "d"], conf_thresh=0.3)
    res = _evaluator(preds, targets)
    np.testing.assert_allclose(report.ap, res["map_per_class"].numpy(), atol=1e-6)
    np.testing.assert_allclose(report.ap_50, _pycocotools_ap50_per_class(preds, targets, 4), atol=1e-6)
    assert report.ap_50.mean() == pytest.approx(float(res["map_50"]), abs=1e-6)
    # Rows close on the non-crowd objects, columns on the confident detections counted.
    crowd_free = sum(int((t["iscrowd"] == 0).sum()) for t in targets)
    assert report.confusion[:4].sum() == crowd_free
    for c, m in enumerate(report.matches):
        assert report.confusion[c].sum() == m.num_gt
        assert report.confusion[:, c].sum() == int((m.scores >= 0.3).sum())


def test_figures_draw(tmp_path: Path) -> None:
    """The three figures render, and the PR figure plots the report's IoU-0.5 curves: each class's
    curve has the class's AP50 as its area (mean over the 101 recall points).
    Catches: the PR curve averaged over IoU 0.5:0.95; a figure drawn from other data than the table."""
    preds, targets = hand_made()
    report = detection_report(preds, targets, CLASSES)
    pr = pr_curve_figure(report)
    curves = {line.get_label(): line.get_data() for line in pr.axes[0].get_lines()}
    for c, name in enumerate(CLASSES):
        (x, y), label = next((v, k) for k, v in curves.items() if k.startswith(f"{name} "))
        np.testing.assert_allclose(x, RECALL_POINTS)
        assert float(np.mean(y)) == pytest.approx(report.ap_50[c], abs=1e-9)
        assert label == f"{name} AP50 {report.ap_50[c]:.3f}"
    # cat: precision 1 up to recall 3/4, then nothing (worked out in hand_made).
    cat = next(v for k, v in curves.items() if k.startswith("cat "))[1]
    np.testing.assert_allclose(cat, np.where(RECALL_POINTS <= 0.75 + 1e-9, 1.0, 0.0))
    for name, fig in (("pr", pr), ("f1", f1_curve_figure(report)), ("cm", confusion_figure(report))):
        fig.savefig(tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 5000


@pytest.mark.slow
def test_yolov1_shapes_run_has_the_images_and_the_table(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Catches the task not producing the media, the per-class table not reaching the task, and
    COCOeval's summary logged at each validation or not at the test. The
    table's AP50 averages to the logged test/map_50 (on real trained outputs in
    test_detection_real_outputs.py; this detector is barely trained)."""
    from litvision.build import build_datamodule, build_task, build_trainer

    cfg = compose_cfg(
        [
            "experiment=yolov1_shapes",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1",
            "trainer.limit_test_batches=2",
            "logger=csv",
            "callbacks=none",
            f"paths.data_dir={tmp_path / 'data'}",
            # An untrained detector's scores are low: keep every box so the curves have points.
            "model.net.score_thresh=0.0",
        ],
        tmp_path / "runs",
    )
    from omegaconf import OmegaConf

    OmegaConf.resolve(cfg)
    dm, task = build_datamodule(cfg), build_task(cfg)
    trainer = build_trainer(cfg)
    with caplog.at_level(logging.INFO):
        trainer.fit(task, datamodule=dm)
        trainer.test(task, datamodule=dm, verbose=False)
    # COCOeval's summary: never from faster-coco-eval at each validation, once (ours) for the test.
    assert not [r for r in caplog.records if r.name.startswith("faster_coco_eval")]
    summaries = [r.getMessage() for r in caplog.records if "COCO summary" in r.getMessage()]
    assert len(summaries) == 1 and summaries[0].startswith("test COCO summary"), summaries
    assert summaries[0].count("Average Precision") == 6
    media = Path(cfg.paths.output_dir) / "media"
    for name in ("test_pr_curve", "test_f1_curve", "test_confusion_matrix"):
        assert (media / f"{name}.png").stat().st_size > 5000, name
    table = task.test_per_class_ap
    assert set(table) == {"circle", "square", "triangle"}
    assert all(row["objects"] > 0 for row in table.values())
    json.dumps(table)  # goes into summary.json as it is
    # The table and the logged mAP come from one evaluation of the same test detections.
    logged = trainer.callback_metrics
    assert np.mean([row["ap_50"] for row in table.values()]) == pytest.approx(
        float(logged["test/map_50"]), abs=1e-4
    )
    for name, row in table.items():
        assert row["ap"] == pytest.approx(float(logged[f"test/ap/{name}"]), abs=1e-4), name


# --- What the figures and the curves say, read back from them -------------------------------------------


def _lines(fig) -> dict:
    return {line.get_label(): line for line in fig.axes[0].get_lines()}


def test_pr_and_f1_figures_show_the_report_with_readable_axes() -> None:
    """The PR and F1 figures plot one line per class that has objects (a class with none, here `eel`, is
    left out), plus a thick black all-class line: the mean of the class curves, labelled with mAP50 (PR) or
    the best mean F1 and its confidence (F1); axes named, on [0, 1] x [0, 1.02], titled with the IoU.
    Catches: a class without objects drawn (or its -1 AP averaged in), the mean over other curves,
    the F1 lines drawn against their index or without their class name, axis names, limits or titles
    lost, the all-class line not told apart."""
    from matplotlib.colors import to_rgba

    preds, targets = hand_made()
    report = detection_report(preds, targets, [*CLASSES, "eel"])
    assert report.ap_50[2] == -1
    pr = pr_curve_figure(report)
    lines = _lines(pr)
    mean_label = f"all classes mAP50 {report.ap_50[:2].mean():.3f}"
    assert set(lines) == {f"{n} AP50 {report.ap_50[c]:.3f}" for c, n in enumerate(CLASSES)} | {mean_label}
    np.testing.assert_allclose(lines[mean_label].get_ydata(), report.pr_precision[:2].mean(0))
    _, _, f1 = report.f1_curves()
    f1_fig = f1_curve_figure(report)
    f1_lines = _lines(f1_fig)
    mean = f1[:2].mean(0)
    best = int(mean.argmax())
    f1_label = f"all classes {mean[best]:.2f} at {CONFIDENCES[best]:.2f}"
    assert set(f1_lines) == {*CLASSES, f1_label}
    for c, name in enumerate(CLASSES):
        np.testing.assert_allclose(f1_lines[name].get_xdata(), CONFIDENCES)
        np.testing.assert_allclose(f1_lines[name].get_ydata(), f1[c])
    np.testing.assert_allclose(f1_lines[f1_label].get_ydata(), mean)
    for fig, mean_line, (xlabel, ylabel, title) in (
        (pr, lines[mean_label], ("recall", "precision", "precision-recall, IoU 0.5")),
        (f1_fig, f1_lines[f1_label], ("confidence", "F1", "F1 against confidence, IoU 0.5")),
    ):
        ax = fig.axes[0]
        assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == (xlabel, ylabel, title)
        assert ax.get_xlim() == (0, 1) and ax.get_ylim() == (0, 1.02)
        assert to_rgba(mean_line.get_color()) == (0, 0, 0, 1)
        assert mean_line.get_linewidth() > max(
            ln.get_linewidth() for ln in ax.get_lines() if ln is not mean_line
        )
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [
            ln.get_label() for ln in ax.get_lines()
        ]


def test_confusion_figure_names_the_background_and_the_threshold() -> None:
    """Catches: the background row/column unnamed or misnamed, the confidence threshold not said."""
    preds, targets = hand_made()
    fig = confusion_figure(detection_report(preds, targets, CLASSES, conf_thresh=0.3))
    assert fig._suptitle.get_text() == "IoU 0.5, confidence >= 0.3"
    ticks = {t.get_text() for ax in fig.axes for t in [*ax.get_xticklabels(), *ax.get_yticklabels()]}
    assert {"cat", "dog", "background"} <= ticks


def test_precision_recall_and_f1_at_each_confidence() -> None:
    """Worked by hand on one class's matches (scores 0.9 TP, 0.6 FP, 0.4 TP; 4 objects): at a confidence
    the detections scoring at least it count. With none kept, precision is 0, or 1 for a class with no
    objects (nothing to miss, nothing wrong), and F1 is 0 where precision and recall are both 0.
    Catches: a detection at exactly the confidence left out, the cumulative counts shifted, the empty
    case's precision (1 when objects exist, 0 without), recall for a class without objects, F1's guard."""
    m = ClassMatches(np.array([0.9, 0.6, 0.4]), np.array([True, False, True]), num_gt=4)
    p, r = _precision_recall_at(m, np.array([0.95, 0.9, 0.6, 0.5, 0.4, 0.0]))
    np.testing.assert_allclose(p, [0.0, 1.0, 0.5, 0.5, 2 / 3, 2 / 3])
    np.testing.assert_allclose(r, [0.0, 0.25, 0.25, 0.25, 0.5, 0.5])
    none = ClassMatches(np.array([0.8]), np.array([False]), num_gt=0)
    p, r = _precision_recall_at(none, np.array([0.9, 0.5]))
    np.testing.assert_allclose(p, [1.0, 0.0])
    np.testing.assert_allclose(r, [0.0, 0.0])
    report = DetectionReport(
        ["a", "b"], 0.5, [m, none], np.zeros(2), np.zeros(2), np.zeros((2, 101)), np.zeros((3, 3))
    )
    _, _, f1 = report.f1_curves()
    at = {round(float(c), 2): i for i, c in enumerate(CONFIDENCES)}
    assert f1[0, at[0.5]] == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    assert f1[0, at[0.95]] == 0.0 and f1[1, at[0.5]] == 0.0
    assert f1[1, at[0.9]] == 0.0  # precision 1, recall 0


def test_per_class_table_worked_by_hand(capfd) -> None:
    """One image: cats A and B, dog C, fox D; detections: a cat on A (0.9), a second cat on A (0.8, a
    duplicate: false positive), a cat on nothing (0.5), a dog on cat B (0.3, IoU 7/12 with B), a dog on C
    exactly at the default threshold 0.25. `eel` has no objects. Each row, the confusion matrix and the PR
    figure's classes, by hand (AP: COCO's 101-point interpolation; cat: recall 1/2 at precision 1 gives
    51/101 at every IoU, the boxes being exact; dog: precision 1/2 up to recall 1). Nothing is printed.
    Catches: the default threshold, a detection at exactly the threshold left out, a duplicate counted as
    a second true positive (a detection id 0, which COCOeval reads as "unmatched"), F1's guard (a class
    with neither precision nor recall, or both below 1 in sum), AP of a class without objects or with
    AP 0 shown wrong (or a class with AP 0 left out of the PR figure and its mean), keys or rounding of the
    row, the cross-class pairing's boxes converted wrongly (the dog on B then background and B missed),
    pycocotools' prints on the terminal."""
    target = _gt([[0, 0, 10, 10], [20, 40, 30, 52], [40, 40, 50, 50], [80, 80, 90, 90]], [0, 0, 1, 3])
    det = _det(
        [[0, 0, 10, 10], [0, 0, 10, 10], [60, 60, 70, 70], [20, 40, 30, 47], [40, 40, 50, 50]],
        [0.9, 0.8, 0.5, 0.3, 0.25],
        [0, 0, 0, 1, 1],
    )
    capfd.readouterr()
    report = detection_report([det], [target], ["cat", "dog", "eel", "fox"])
    assert capfd.readouterr().out == ""
    assert report.conf_thresh == 0.25
    cat_ap = round(51 / 101, 6)
    assert report.per_class == {
        "cat": {
            "ap": cat_ap,
            "ap_50": cat_ap,
            "precision": round(1 / 3, 6),
            "recall": 0.5,
            "f1": 0.4,
            "objects": 2,
            "detections": 3,
        },
        "dog": {
            "ap": 0.5,
            "ap_50": 0.5,
            "precision": 0.5,
            "recall": 1.0,
            "f1": round(2 / 3, 6),
            "objects": 1,
            "detections": 2,
        },
        "eel": {
            "ap": None,
            "ap_50": None,
            "precision": 1.0,
            "recall": 0.0,
            "f1": 0.0,
            "objects": 0,
            "detections": 0,
        },
        "fox": {
            "ap": 0.0,
            "ap_50": 0.0,
            "precision": 0.0,
            "recall": 0.0,
            "f1": 0.0,
            "objects": 1,
            "detections": 0,
        },
    }
    # rows: true cat, dog, eel, fox, background; columns: predicted, the same order
    assert report.confusion.tolist() == [
        [1, 1, 0, 0, 0],
        [0, 1, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 1],
        [2, 0, 0, 0, 0],
    ]
    assert report.ap[2] == report.ap_50[2] == -1  # documented: -1 for a class without objects
    lines = _lines(pr_curve_figure(report))
    mean = (51 / 101 + 0.5 + 0.0) / 3
    assert set(lines) == {
        "cat AP50 0.505",
        "dog AP50 0.500",
        "fox AP50 0.000",
        f"all classes mAP50 {mean:.3f}",
    }
    np.testing.assert_allclose(
        lines[f"all classes mAP50 {mean:.3f}"].get_ydata(), report.pr_precision[[0, 1, 3]].mean(0)
    )


def test_a_class_with_detections_but_no_objects_has_no_ap() -> None:
    """Catches: a class that only has false positives given an AP (or a NaN) instead of none."""
    target = _gt([[0, 0, 10, 10]], [0])
    det = _det([[0, 0, 10, 10], [30, 30, 40, 40]], [0.9, 0.8], [0, 1])
    report = detection_report([det], [target], ["cat", "eel"])
    assert report.per_class["eel"]["ap"] is None and report.per_class["eel"]["ap_50"] is None
    assert report.ap[1] == report.ap_50[1] == -1
    assert report.per_class["cat"]["ap_50"] == 1.0


def test_an_evaluation_from_another_metric_is_refused() -> None:
    """Catches: the wrong-shape message lost (or a TypeError instead of the ValueError that names
    make_map_metric)."""
    preds, targets = hand_made()
    bad = {"precision": torch.zeros(3, 101, 2, 4, 3), "classes": torch.tensor([0, 1])}
    with pytest.raises(
        ValueError, match=r"precision is \(3, 101, 2, 4, 3\): build the metric with make_map_metric"
    ):
        detection_report(preds, targets, CLASSES, evaluation=bad)


def test_metric_states_keep_crowd_flags_and_areas() -> None:
    """The targets read back from a metric keep each object's crowd flag and area, so a report built from
    them ignores a detection on a crowd, as the metric did. Catches: iscrowd or area stored under another
    key (the crowd then counts as an object and the detection on it as a true positive)."""
    from litvision.metrics.detection_report import metric_states

    target = _gt([[0, 0, 10, 10], [50, 50, 70, 70]], [0, 0], crowd=[0, 1])
    target["area"] = torch.tensor([90.0, 400.0])
    det = _det([[0, 0, 10, 10], [51, 51, 70, 70]], [0.9, 0.8], [0, 0])
    metric = make_map_metric()
    metric.update([det], [target])
    [pred], [back] = metric_states(metric)
    torch.testing.assert_close(pred["boxes"], det["boxes"])
    torch.testing.assert_close(back["boxes"], target["boxes"])
    assert back["iscrowd"].tolist() == [0, 1] and back["area"].tolist() == [90.0, 400.0]
    row = detection_report([pred], [back], ["cat"]).per_class["cat"]
    assert (row["objects"], row["detections"], row["precision"]) == (1, 1, 1.0)
