"""Detection output a user can read: the results table (headline metrics first, COCO's -1 as n/a),
the threshold stated on drawn images, class-agnostic NMS for predict, and COCOeval's summary kept
out of the log at each validation."""

from __future__ import annotations

import logging

import pytest
import torch
from test_detection_map import synthetic_detections

from litvision.commands.predict import class_agnostic_nms
from litvision.metrics.detection import coco_summary_lines, compute_map, make_map_metric, metric_targets
from litvision.tasks.detection import MIN_DRAW_WIDTH, detections_figure, draw_detections, threshold_caption
from litvision.utils.console import print_summary


def test_results_table_puts_map_first_and_shows_no_objects_as_na(capsys: pytest.CaptureFixture) -> None:
    """Catches: rows sorted alphabetically (ap/circle before map); COCO's -1 printed as a score."""
    test = {
        "test/ap/circle": 0.3,
        "test/map": 0.25,
        "test/map_50": 0.5,
        "test/map_75": 0.2,
        "test/map_large": -1.0,
        "test/mar_100": 0.4,
        "test/matched_iou": 0.7,
    }
    print_summary({"experiment": "yolov1_shapes", "test": test, "run_dir": "r"})
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("│")]
    names = [row.strip("│").split("│")[0].strip() for row in rows]
    assert names[:3] == ["map", "map_50", "map_75"]
    assert names[3:] == sorted(names[3:])
    large = next(row for row in rows if " map_large " in row)
    assert "n/a" in large and "-1" not in large
    assert "0.7000" in next(row for row in rows if "matched_iou" in row)


def test_threshold_is_stated_and_an_empty_panel_names_the_best_score() -> None:
    """Catches: the figure drawing every prediction, not only those above the threshold; the best
    score taken from the kept predictions (so an empty panel could never name it)."""
    img = torch.rand(3, 64, 64)
    gt = {"boxes": torch.tensor([[4.0, 4, 30, 30]]), "labels": torch.tensor([1])}
    low = {
        "boxes": torch.tensor([[4.0, 4, 30, 30], [30.0, 30, 60, 60]]),
        "scores": torch.tensor([0.16, 0.1]),
        "labels": torch.tensor([1, 0]),
    }
    high = {k: v.clone() for k, v in low.items()}
    high["scores"] = torch.tensor([0.9, 0.5])
    fig = detections_figure([(img, gt, low), (img, gt, high)], ["circle", "square"], score_thresh=0.3)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["no prediction above 0.3, best 0.16", "2 predictions scoring >= 0.3"]
    assert "0.3" in fig._suptitle.get_text()
    assert threshold_caption(1, 0.3, 0.9) == "1 prediction scoring >= 0.3"
    assert threshold_caption(0, 0.3, None) == "no prediction at all"


def test_drawn_image_is_legible_size_with_a_caption_strip() -> None:
    """Catches: a small image drawn at its own size (labels unreadable); boxes not scaled with it;
    no caption when a threshold is given."""
    img = torch.zeros(3, 64, 80)
    pred = {
        "boxes": torch.tensor([[10.0, 10, 20, 20]]),
        "scores": torch.tensor([0.9]),
        "labels": torch.tensor([0]),
    }
    plain = draw_detections(img, pred, ["circle"])
    factor = -(-MIN_DRAW_WIDTH // 80)
    assert plain.shape == (3, 64 * factor, 80 * factor)
    # The red box sits at 10..20 px of the original, scaled by the factor.
    red = (plain[0] == 255) & (plain[1] == 0)
    assert red[10 * factor, 10 * factor : 20 * factor].all() and not red[5 * factor].any()
    captioned = draw_detections(img, pred, ["circle"], score_thresh=0.3, best=0.9)
    assert captioned.shape[1] > plain.shape[1] and captioned.shape[2] == plain.shape[2]


def test_class_agnostic_nms_keeps_one_box_per_object_whatever_its_class() -> None:
    """Catches: NMS per class (labels taken into account); the IoU threshold ignored or inverted."""
    pred = {
        "boxes": torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 10, 9], [50.0, 50, 60, 60], [0.0, 0, 10, 5]]),
        "scores": torch.tensor([0.6, 0.9, 0.5, 0.4]),
        "labels": torch.tensor([0, 1, 2, 0]),
    }
    kept = class_agnostic_nms(pred, 0.5)
    # The .9 square wins over the .6 circle on the same object (IoU .9); the far box stays; the
    # half-height circle overlaps the square by 5/9 > 0.5 and goes.
    assert kept["scores"].tolist() == pytest.approx([0.9, 0.5])
    assert kept["labels"].tolist() == [1, 2]
    loose = class_agnostic_nms(pred, 0.6)  # 5/9 < 0.6: the half-height box now stays
    assert loose["scores"].tolist() == pytest.approx([0.9, 0.5, 0.4])


def test_validation_compute_keeps_cocoeval_summary_out_of_the_log(caplog: pytest.LogCaptureFixture) -> None:
    """faster-coco-eval logs its 12-line summary on every compute (and per class); the task's compute
    does not. Catches: the faster_coco_eval logger left at INFO; its level not restored afterwards."""
    targets, preds = synthetic_detections(num_images=6, num_classes=2, seed=3)
    metric = make_map_metric(class_metrics=True, backend="faster_coco_eval")
    metric.update(preds, metric_targets(targets))
    coco_log = logging.getLogger("faster_coco_eval")
    level = coco_log.level
    with caplog.at_level(logging.INFO):
        res = compute_map(metric)
        assert not [r for r in caplog.records if r.name.startswith("faster_coco_eval")]
        assert coco_log.level == level
        metric._computed = None  # the control: torchmetrics' own compute does log it
        metric.compute()
        assert [r for r in caplog.records if r.name.startswith("faster_coco_eval")]
    lines = coco_summary_lines(res)
    assert len(lines) == 12
    assert lines[1].startswith(" Average Precision  (AP) @[ IoU=0.50 ") and lines[1].endswith(
        f"= {float(res['map_50']):0.3f}"
    )
