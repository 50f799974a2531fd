"""The one weights loader: three load modes, reports of missing/unexpected/skipped keys, files, errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from litvision.errors import UserError
from litvision.models.classification.cnn import SmallCNN
from litvision.models.weights import build_net, load_weights

RESNET = {"_target_": "litvision.models.classification.resnet.resnet", "arch": "resnet18"}


@pytest.fixture(scope="module")
def imagenet_like(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A torchvision resnet18 state dict (1000 classes) saved as a plain .pth."""
    import torchvision

    torch.manual_seed(0)
    sd = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path_factory.mktemp("w") / "resnet18-source.pth"
    torch.save(sd, path)
    return path, sd


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a, b)


def test_replace_head_loads_everything_then_swaps_the_head(imagenet_like, caplog) -> None:
    path, src = imagenet_like
    with caplog.at_level(logging.INFO, logger="litvision.models.weights"):
        net = build_net({**RESNET, "num_classes": 5, "weights": str(path), "load_mode": "replace_head"})
    report = net.weights_report
    assert (
        len(report.loaded) == len(src) and not report.missing and not report.unexpected and not report.skipped
    )
    assert (
        report.head_note
        == "loaded the source head (1000 classes), then replaced fc with a new one for 5 classes"
    )
    sd = net.state_dict()
    assert all(_same(sd[k], v) for k, v in src.items() if not k.startswith("fc."))
    assert net.fc.out_features == 5 and not _same(sd["fc.weight"], src["fc.weight"][:5])
    assert (
        f"[replace_head]: loaded {len(src)} tensors, missing 0, unexpected 0, skipped (shape) 0"
        in caplog.text
    )


def test_drop_head_reports_missing_head(imagenet_like) -> None:
    path, src = imagenet_like
    net = build_net({**RESNET, "num_classes": 5, "weights": str(path), "load_mode": "drop_head"})
    report = net.weights_report
    assert report.dropped_head == ["fc.bias", "fc.weight"]
    assert report.missing == ["fc.bias", "fc.weight"] and not report.unexpected and not report.skipped
    assert len(report.loaded) == len(src) - 2
    assert "missing (left as initialised): fc.bias, fc.weight" in str(report)


def test_shape_match_skips_and_reports_mismatches(tmp_path: Path, caplog) -> None:
    src = SmallCNN(in_channels=1, num_classes=10, width=8).state_dict()
    src["extra.weight"] = torch.ones(3)
    torch.save(src, tmp_path / "cnn.pt")
    net = SmallCNN(in_channels=1, num_classes=5, width=8)
    with caplog.at_level(logging.WARNING, logger="litvision.models.weights"):
        report = load_weights(net, tmp_path / "cnn.pt", mode="shape_match")
    assert report.skipped == [("head.1.weight", (10, 16), (5, 16)), ("head.1.bias", (10,), (5,))]
    assert report.missing == ["head.1.bias", "head.1.weight"]
    assert report.unexpected == ["extra.weight"]
    assert _same(net.state_dict()["features.0.0.weight"], src["features.0.0.weight"])
    # Never silent: the mismatch is logged with both shapes.
    assert "skipped, shape mismatch: head.1.weight [10, 16] -> model [5, 16]" in caplog.text
    assert "unexpected (not in the model, ignored): extra.weight" in caplog.text
    # A wider source: every conv mismatches, nothing crashes, and all of it is reported.
    wide = SmallCNN(in_channels=1, num_classes=5, width=16).state_dict()
    report = load_weights(SmallCNN(in_channels=1, num_classes=5, width=8), _save(wide, tmp_path / "w.pth"))
    assert report.skipped and all(k in report.missing for k, _, _ in report.skipped)


def _save(sd: dict, path: Path) -> Path:
    torch.save(sd, path)
    return path


def test_wrapper_prefixes_are_aligned(imagenet_like, tmp_path: Path) -> None:
    path, src = imagenet_like
    # Classic stacked head: the source's keys go under `backbone.`, its 1000-way fc included.
    net = build_net(
        {**RESNET, "num_classes": 5, "head": "stack", "weights": str(path), "load_mode": "drop_head"}
    )
    report = net.weights_report
    assert report.prefix_note == "added 'backbone.'"
    assert report.missing == ["head.2.bias", "head.2.weight"] and len(report.loaded) == len(src)
    assert _same(net.backbone.fc.weight, src["fc.weight"])
    # DDP-style `module.` prefixes inside a {"model": ...} checkpoint are stripped.
    torch.save({"model": {f"module.{k}": v for k, v in src.items()}, "epoch": 3}, tmp_path / "ddp.pth")
    report = load_weights(
        build_net({**RESNET, "num_classes": 1000}), tmp_path / "ddp.pth", mode="shape_match"
    )
    assert report.prefix_note == "stripped 'module.'" and len(report.loaded) == len(src)


def test_lightning_checkpoint(runs_dir: Path) -> None:
    from conftest import compose_cfg

    from litvision.train import train

    cfg = compose_cfg(
        ["experiment=digits_cnn", "debug=limit", "trainer.max_epochs=1", "model.net.width=8", "logger=csv"],
        runs_dir,
    )
    ckpt = train(cfg)["best_checkpoint"]
    trained = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    net = build_net(
        {
            "_target_": "litvision.models.classification.cnn.SmallCNN",
            "num_classes": 10,
            "width": 8,
            "weights": ckpt,
            "load_mode": "shape_match",
        }
    )
    report = net.weights_report
    assert report.prefix_note == "stripped 'net.'"
    assert not report.missing and not report.unexpected and not report.skipped
    assert _same(net.state_dict()["head.1.weight"], trained["net.head.1.weight"])


def test_missing_file_and_bad_names(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"model.net.weights: weights file .*/nope\.pth does not exist"):
        build_net({**RESNET, "num_classes": 5, "weights": str(tmp_path / "nope.pth")})
    with pytest.raises(
        UserError,
        match="model.net.weights='IMAGENET1K_V9': unknown weights for resnet18; use one of DEFAULT, IMAGENET1K_V1",
    ):
        build_net({**RESNET, "num_classes": 5, "weights": "IMAGENET1K_V9"})
    with pytest.raises(UserError, match="Unknown weights load mode 'merge'"):
        load_weights(SmallCNN(), _save(SmallCNN().state_dict(), tmp_path / "s.pth"), mode="merge")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match=r"junk\.pth is not a readable PyTorch checkpoint"):
        load_weights(SmallCNN(), tmp_path / "junk.pth")


def test_torchvision_name_offline_then_from_the_hub_cache(monkeypatch, tmp_path: Path, imagenet_like) -> None:
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    # No network: a port nothing listens on refuses at once (the real URL is in the message below).
    monkeypatch.setattr(weights.value, "url", "http://127.0.0.1:9/resnet18-f37072fd.pth")
    cache = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(UserError) as err:
        build_net({**RESNET, "num_classes": 5, "weights": "IMAGENET1K_V1"})
    assert f"place it at {cache}" in str(
        err.value
    ) and "model.net.weights=/path/to/resnet18-f37072fd.pth" in str(err.value)
    # Doing what the message says works offline: the file in the torch hub cache is used.
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(imagenet_like[0].read_bytes())
    net = build_net({**RESNET, "num_classes": 5, "weights": "IMAGENET1K_V1"})
    assert len(net.weights_report.loaded) == len(imagenet_like[1])
    assert str(cache) in net.weights_report.source


DETECTOR = "fasterrcnn_mobilenet_v3_large_fpn"  # the cheapest torchvision detector to build


def _detector(**kw):
    from litvision.models.detection.torchvision_detectors import torchvision_detector

    return torchvision_detector(DETECTOR, weights_backbone=None, min_size=64, max_size=64, **kw)


@pytest.fixture(scope="module")
def coco_like_detector(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A 90-class detector saved the way litvision's detection checkpoints hold it (`net.` prefix)."""
    torch.manual_seed(0)
    src = _detector(num_classes=90).state_dict()
    path = tmp_path_factory.mktemp("det") / "detector.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in src.items()}, "epoch": 2}, path)
    return path, src


@pytest.mark.parametrize("mode", ["replace_head", "drop_head", "shape_match"])
def test_detector_weights_load_in_every_mode(mode: str, coco_like_detector) -> None:
    """The one loader on a detector: everything but the class head loads, the head stays new for 3 classes.

    Catches: a detector's replace_head resizing its last Linear (bbox_pred) like a classifier's fc
    (`fixed_head` dropped), and the class head named wrongly (`class_head` giving `roi_heads`, which
    would drop the box head's trained layers too)."""
    path, src = coco_like_detector
    net = _detector(num_classes=3, weights=str(path), load_mode=mode)
    report = net.weights_report
    head = sorted(k for k in src if k.startswith("model.roi_heads.box_predictor."))
    assert len(head) == 4 and report.prefix_note == "stripped 'net.'"
    assert report.missing == head and not report.unexpected
    sd = net.state_dict()
    assert all(_same(sd[k], v) for k, v in src.items() if k not in head)
    assert net.model.roi_heads.box_predictor.cls_score.out_features == 4  # 3 classes + background
    assert net.model.roi_heads.box_predictor.bbox_pred.out_features == 16
    if mode == "shape_match":
        assert sorted(k for k, *_ in report.skipped) == head and not report.dropped_head
    else:
        assert report.dropped_head == head and not report.skipped
    if mode == "replace_head":
        assert report.head_note == "kept the new model.roi_heads.box_predictor for 3 classes"
