"""torchvision detectors behind litvision's interface: heads, labels, offline weights, local weight files."""

from __future__ import annotations

import pytest
import torch

from litvision.errors import UserError
from litvision.models.detection.torchvision_detectors import torchvision_detector

ARCH = "fasterrcnn_mobilenet_v3_large_fpn"  # the cheapest to build


def _build(**kw):
    return torchvision_detector(
        ARCH, num_classes=kw.pop("num_classes", 3), weights_backbone=None, min_size=64, max_size=64, **kw
    )


def test_head_sized_for_classes_plus_background_and_labels_shifted() -> None:
    torch.manual_seed(0)
    model = _build(score_thresh=0.0)
    assert model.model.roi_heads.box_predictor.cls_score.out_features == 4
    model.train()
    images = [torch.rand(3, 64, 64)]
    targets = [{"boxes": torch.tensor([[5.0, 5, 40, 40]]), "labels": torch.tensor([2])}]
    losses = model(images, targets)
    assert {"loss_cls", "loss_box", "loss_rpn_obj", "loss_rpn_box"} == set(losses)
    model.eval()
    with torch.no_grad():
        (out,) = model(images)
    assert len(out["labels"]) > 0
    assert out["labels"].min() >= 0 and out["labels"].max() <= 2  # background (torchvision's 0) never leaks


@pytest.mark.parametrize("key", ["weights", "weights_backbone"])
def test_missing_pretrained_weights_offline_name_the_cache_path(key, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("LITVISION_OFFLINE", "1")
    kwargs = {"weights": None, "weights_backbone": None, key: "DEFAULT"}
    with pytest.raises(UserError) as err:
        torchvision_detector(ARCH, num_classes=3, **kwargs)
    msg = str(err.value)
    assert f"model.net.{key}" in msg
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in msg
    assert "https://download.pytorch.org/models/" in msg and f"{key}=null" in msg


def test_unknown_names_are_user_errors() -> None:
    with pytest.raises(UserError, match="COCO_V1"):
        torchvision_detector(ARCH, num_classes=3, weights="COCO_V9")
    with pytest.raises(UserError, match="fcos_resnet50_fpn"):
        torchvision_detector("yolo9000", num_classes=3)


def test_local_weights_file_loads_matching_tensors(tmp_path) -> None:
    """A COCO-style file (91-class head) loads into a 3-class model: all but the head's class layers."""
    torch.manual_seed(0)
    coco_like = torchvision_detector(ARCH, num_classes=90, weights_backbone=None).model
    path = tmp_path / "detector.pth"
    torch.save(coco_like.state_dict(), path)
    model = _build(weights=str(path))
    torch.testing.assert_close(
        model.model.backbone.body["0"][0].weight, coco_like.backbone.body["0"][0].weight
    )
    torch.testing.assert_close(model.model.rpn.head.conv[0][0].weight, coco_like.rpn.head.conv[0][0].weight)
    assert model.model.roi_heads.box_predictor.cls_score.out_features == 4
    with pytest.raises(UserError, match="does not exist"):
        _build(weights=str(tmp_path / "missing.pth"))
