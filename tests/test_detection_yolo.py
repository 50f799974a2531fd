"""The YOLOv1-style detector: backbone weights copy, target assignment, loss going down, output format."""

from __future__ import annotations

import pytest
import torch
import torchvision

from litvision.errors import UserError
from litvision.models.detection.yolo import YOLOv1


def _batch():
    images = [torch.rand(3, 96, 128), torch.rand(3, 128, 96)]
    targets = [
        {"boxes": torch.tensor([[10.0, 10, 50, 60]]), "labels": torch.tensor([2])},
        {"boxes": torch.tensor([[5.0, 5, 40, 40], [50.0, 60, 90, 120]]), "labels": torch.tensor([0, 1])},
    ]
    return images, targets


def _tiny(**kw) -> YOLOv1:
    args = dict(
        num_classes=3, backbone="resnet18", backbone_stages=3, image_size=64, grid_size=4, head_channels=32
    )
    return YOLOv1(**{**args, **kw})


@pytest.mark.parametrize("box_loss", ["giou", "smooth_l1"])
def test_loss_goes_down_on_a_fixed_batch(box_loss: str) -> None:
    torch.manual_seed(0)
    model = _tiny(box_loss=box_loss).train()
    images, targets = _batch()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    history = []
    for _ in range(30):
        losses = model(images, targets)
        assert set(losses) == {"loss_box", "loss_obj", "loss_noobj", "loss_cls"}
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert history[-1] < 0.3 * history[0], history


def test_targets_go_to_the_cell_holding_the_centre() -> None:
    model = _tiny(grid_size=4)
    sizes = torch.tensor([[128.0, 128.0]])
    # Centre (40, 100) of a 128 px image on a 4x4 grid: column 1, row 3.
    obj, boxes, labels = model.build_targets(
        [{"boxes": torch.tensor([[20.0, 80, 60, 120]]), "labels": torch.tensor([2])}], sizes
    )
    assert obj.sum() == 1 and obj[0, 3, 1]
    assert labels[0, 3, 1] == 2
    torch.testing.assert_close(boxes[0, 3, 1], torch.tensor([20.0, 80, 60, 120]) / 128)


def test_responsible_predictor_is_the_best_overlapping_one() -> None:
    torch.manual_seed(0)
    model = _tiny(grid_size=1, boxes_per_cell=2, lambda_noobj=1.0, conf_target="one").train()
    out = torch.zeros(1, 1, 1, 2 * 5 + 3)
    # Predictor 0: a box at the centre sized 0.5 (logit 0); predictor 1: a tiny box (logit -4).
    out[..., 7:9] = -4.0
    target = [{"boxes": torch.tensor([[32.0, 32, 96, 96]]), "labels": torch.tensor([0])}]
    losses = model.loss(out, target, torch.tensor([[128.0, 128.0]]))
    # Predictor 0 matches the box exactly, so the box loss is 0 and it alone is "responsible".
    assert losses["loss_box"].item() == pytest.approx(0.0, abs=1e-5)
    assert losses["loss_obj"].item() == pytest.approx((1 - 0.5) ** 2, abs=1e-5)
    assert losses["loss_noobj"].item() == pytest.approx(0.5**2, abs=1e-5)


def test_eval_output_in_input_pixels() -> None:
    """The head's output is fixed by hand (zero weights, a bias encoding one box per cell), so the
    detections of a 128x96 image are known: cell (gx, gy)'s box is centred at ((gx + 0.5) * 32,
    (gy + 0.5) * 24) and is 32 x 24 px (a quarter of the image each way), class 1.
    Catches: boxes left in network space (image fractions 0..1, grid-cell units, or the 64 px input)."""
    S, B, C = 4, 2, 3
    model = _tiny(grid_size=S, boxes_per_cell=B).eval()
    last = model.head[-1]
    bias = torch.zeros(B * 5 + C)
    bias[0:2] = 0.0  # predictor 0: centre offset sigmoid(0) = 0.5 of the cell
    bias[2:4] = torch.logit(torch.tensor(0.25))  # width, height: a quarter of the image
    bias[4] = 8.0  # confident
    bias[9] = -20.0  # predictor 1: no object
    bias[B * 5 :] = torch.tensor([-20.0, 20.0, -20.0])  # class 1
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(bias)
    images, _ = _batch()  # 3 x 96 x 128 and 3 x 128 x 96
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2
    for img, det in zip(images, out, strict=True):
        h, w = img.shape[-2:]
        assert set(det) == {"boxes", "scores", "labels"}
        cw, ch = w / S, h / S
        expected = torch.tensor(
            [
                [
                    (gx + 0.5) * cw - w / 8,
                    (gy + 0.5) * ch - h / 8,
                    (gx + 0.5) * cw + w / 8,
                    (gy + 0.5) * ch + h / 8,
                ]
                for gy in range(S)
                for gx in range(S)
            ]
        )
        got = det["boxes"][torch.argsort(det["boxes"][:, 1] * 1e4 + det["boxes"][:, 0])]
        torch.testing.assert_close(got, expected, atol=1e-3, rtol=0)
        assert det["labels"].tolist() == [1] * S * S
        assert det["boxes"][:, 0::2].min() >= 0 and det["boxes"][:, 1::2].min() >= 0
        assert det["boxes"][:, 0::2].max() <= w and det["boxes"][:, 1::2].max() <= h


def test_pretrained_backbone_copied_and_frozen(tmp_path) -> None:
    resnet = torchvision.models.resnet18(num_classes=1000)
    path = tmp_path / "resnet18.pth"
    torch.save(resnet.state_dict(), path)
    model = _tiny(backbone_stages=4, weights_backbone=str(path), freeze_backbone=True)
    report = model.load_report
    assert report.missing == [] and report.unexpected == [] and report.skipped == []
    assert report.dropped_head == ["fc.bias", "fc.weight"]
    torch.testing.assert_close(model.backbone.conv1.weight, resnet.conv1.weight)
    torch.testing.assert_close(model.backbone.layer4[1].bn2.running_var, resnet.layer4[1].bn2.running_var)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    model.train()
    assert not model.backbone.training and model.head.training  # frozen BatchNorm keeps its statistics


def test_bad_settings_are_user_errors(tmp_path) -> None:
    with pytest.raises(UserError, match="box_loss"):
        _tiny(box_loss="l2")
    with pytest.raises(UserError, match="backbone"):
        _tiny(backbone="vgg16")
    with pytest.raises(UserError, match="does not exist"):
        _tiny(weights_backbone=str(tmp_path / "missing.pth"))
