"""Box geometry the detectors rely on: IoU, the IoU-family losses, decoding with per-class NMS."""

from __future__ import annotations

import pytest
import torch
from torchvision import ops

from litvision.errors import UserError
from litvision.models.detection.yolo import BOX_LOSSES, box_loss, decode_detections


def test_iou_worked_example() -> None:
    # Worked by hand: intersection 10 x 10 = 100, union 400 + 400 - 100 = 700.
    a = torch.tensor([[10.0, 10, 30, 30]])
    b = torch.tensor([[20.0, 20, 40, 40]])
    assert ops.box_iou(a, b).item() == pytest.approx(100 / 700, abs=1e-6)
    assert ops.box_iou(a, b).item() == pytest.approx(0.142857, abs=1e-6)
    # -ln(IoU) for the IoU loss.
    assert box_loss(a, b, "iou").item() == pytest.approx(-torch.log(torch.tensor(1 / 7)).item(), abs=1e-5)


def test_giou_diou_ciou_by_hand() -> None:
    a = torch.tensor([[10.0, 10, 30, 30]])
    b = torch.tensor([[20.0, 20, 40, 40]])
    iou = 1 / 7
    # Enclosing box (10,10)-(40,40): area 900; GIoU loss = 1 - IoU + (900 - 700) / 900.
    assert box_loss(a, b, "giou").item() == pytest.approx(1 - iou + 200 / 900, abs=1e-5)
    # Centres (20,20) and (30,30): d^2 = 200; enclosing diagonal c^2 = 30^2 + 30^2 = 1800.
    assert box_loss(a, b, "diou").item() == pytest.approx(1 - iou + 200 / 1800, abs=1e-5)
    # Same aspect ratio: v = 0, CIoU equals DIoU.
    assert box_loss(a, b, "ciou").item() == pytest.approx(box_loss(a, b, "diou").item(), abs=1e-5)
    wide = torch.tensor([[20.0, 25, 40, 35]])
    assert box_loss(a, wide, "ciou").item() > box_loss(a, wide, "diou").item()


@pytest.mark.parametrize("kind", BOX_LOSSES)
def test_losses_zero_for_identical_and_grow_with_distance(kind: str) -> None:
    box = torch.tensor([[10.0, 10, 30, 30]])
    assert box_loss(box, box.clone(), kind).item() == pytest.approx(0.0, abs=1e-5)
    values = [box_loss(box, box + torch.tensor([s, s, s, s]), kind).item() for s in (2.0, 5.0, 10.0, 15.0)]
    assert all(b > a for a, b in zip(values, values[1:], strict=False)), values


@pytest.mark.parametrize("kind", ["giou", "diou"])
def test_giou_and_diou_approach_two_for_distant_boxes(kind: str) -> None:
    box = torch.tensor([[0.0, 0, 10, 10]])
    far = torch.tensor([[1e4, 1e4, 1e4 + 10, 1e4 + 10]])
    assert box_loss(box, far, kind).item() == pytest.approx(2.0, abs=1e-2)
    assert box_loss(box, far, kind).item() <= 2.0 + 1e-6


def test_unknown_box_loss_is_a_user_error() -> None:
    with pytest.raises(UserError, match="box_loss"):
        box_loss(torch.zeros(1, 4), torch.zeros(1, 4), "l2")


def test_decoding_keeps_and_drops_the_right_boxes() -> None:
    boxes = torch.tensor(
        [
            [0.0, 0, 10, 10],  # 0: best box of class 0
            [1.0, 1, 11, 11],  # 1: IoU 0.68 with box 0 -> dropped for class 0, kept for class 1
            [20.0, 20, 30, 30],  # 2: no overlap -> kept
            [0.0, 0, 10, 9],  # 3: class 1 only, IoU 0.61 with box 1 (scored higher) -> dropped
            [50.0, 50, 60, 60],  # 4: below the score threshold -> gone
        ]
    )
    scores = torch.tensor(
        [
            [0.9, 0.0],
            [0.8, 0.7],
            [0.6, 0.0],
            [0.0, 0.65],
            [0.04, 0.02],
        ]
    )
    out = decode_detections(boxes, scores, score_thresh=0.05, nms_thresh=0.5, topk=10)
    got = {(tuple(b.tolist()), int(c)) for b, c in zip(out["boxes"], out["labels"], strict=False)}
    assert got == {((0.0, 0.0, 10.0, 10.0), 0), ((20.0, 20.0, 30.0, 30.0), 0), ((1.0, 1.0, 11.0, 11.0), 1)}
    assert out["scores"].tolist() == sorted(out["scores"].tolist(), reverse=True)
    # At a higher NMS threshold the overlapping same-class boxes survive (IoU 0.68 < 0.7).
    loose = decode_detections(boxes, scores, score_thresh=0.05, nms_thresh=0.7, topk=10)
    assert len(loose["boxes"]) == 5
    # top-k keeps the best scores.
    top2 = decode_detections(boxes, scores, score_thresh=0.05, nms_thresh=0.5, topk=2)
    assert top2["scores"].tolist() == pytest.approx([0.9, 0.7])
