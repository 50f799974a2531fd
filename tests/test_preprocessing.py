"""The pair (model spec, dataset spec) decides the preprocessing unless the experiment states it
(litvision.data.pipeline.choose, `${preprocessing:...}` in configs/data/base/images.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import compose_cfg
from omegaconf import OmegaConf


def _data(overrides: list[str], tmp_path: Path) -> dict:
    cfg = compose_cfg(overrides, tmp_path)
    OmegaConf.resolve(cfg)
    return OmegaConf.to_container(cfg.data)


def test_pretrained_weights_bring_their_own_size_interpolation_and_statistics(tmp_path: Path) -> None:
    """timm's ViT weights (pretrained_cfg: 224 px, crop_pct 0.9, bicubic, mean/std 0.5) and torchvision's
    ResNet-50 V1 (resize 256, crop 224, ImageNet statistics, bilinear).
    Catches: the weights' spec ignored (the dataset's ImageNet statistics and bilinear for the ViT),
    and a resize rounded rather than floored as timm does (249 for 224 / 0.9)."""
    vit = _data(["experiment=vit_flowers"], tmp_path)
    assert (vit["image_size"], vit["resize_size"], vit["resize_interpolation"]) == (224, 248, "bicubic")
    assert vit["mean"] == pytest.approx([0.5, 0.5, 0.5]) and vit["std"] == pytest.approx([0.5, 0.5, 0.5])
    resnet = _data(["experiment=resnet50_flowers"], tmp_path)
    assert (resnet["image_size"], resnet["resize_size"], resnet["train_crop"]) == (224, 256, "random_resized")
    assert resnet["mean"] == pytest.approx([0.485, 0.456, 0.406])


def test_the_dataset_decides_without_weights_and_a_stated_value_wins(tmp_path: Path) -> None:
    """Catches: a dataset's native size ignored (CIFAR-10 from scratch at 224), and a value the
    experiment states overwritten by the choice (data.image_size=48 must stay 48, resized to 48)."""
    cifar = _data(["experiment=resnet18_cifar10"], tmp_path)
    assert (cifar["image_size"], cifar["resize_size"], cifar["train_crop"]) == (32, 32, "pad")
    stated = _data(["experiment=resnet50_flowers", "model.net.weights=null", "data.image_size=48"], tmp_path)
    assert (stated["image_size"], stated["resize_size"], stated["train_crop"]) == (48, None, "pad")
    grey = _data(["data=image_folder", f"data.root={tmp_path}", "data.in_channels=1"], tmp_path)
    assert len(grey["mean"]) == len(grey["std"]) == 1  # the luma of the RGB statistics
