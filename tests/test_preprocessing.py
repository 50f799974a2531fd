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


def test_a_folder_is_sized_from_a_spread_sample_without_listing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder's size is read from 64 images taken in turn from each class folder, and a class folder
    is read only until its share is found (a million-file folder is sized at every config resolve).
    Catches: the whole folder listed (every entry of every class read), the sample taken from the first
    folders only (the last one's left out), and a sample short of 64."""
    import os

    from PIL import Image

    from litvision.data.pipeline import choose

    for c in range(10):
        (tmp_path / f"class_{c}").mkdir()
        side = 40 if c == 0 else 12
        buf = tmp_path / f"proto_{c}.png"
        Image.new("RGB", (side, side + 3)).save(buf)
        data = buf.read_bytes()
        buf.unlink()
        for i in range(200):
            (tmp_path / f"class_{c}" / f"{i:04d}.png").write_bytes(data)
    seen: list[str] = []
    real_scandir = os.scandir

    class Counting:
        def __init__(self, path: str) -> None:
            self.it = real_scandir(path)

        def __enter__(self) -> Counting:
            return self

        def __exit__(self, *exc: object) -> None:
            self.it.close()

        def __iter__(self) -> Counting:
            return self

        def __next__(self) -> os.DirEntry:
            entry = next(self.it)
            seen.append(entry.path)
            return entry

    monkeypatch.setattr(os, "scandir", Counting)
    sample = choose.sample_images(tmp_path)
    assert len(sample) == 64 and sample == sorted(sample)
    # 64 over 10 folders: a share of 7 read from each, 6 or 7 of them kept, in turn.
    per_class = [sum(f"class_{c}{os.sep}" in p for p in sample) for c in range(10)]
    assert set(per_class) == {6, 7}, per_class
    mine = [p for p in seen if p.startswith(str(tmp_path))]
    assert len(mine) <= 10 + 10 * 7, len(mine)  # the root's entries, then each class folder's share
    monkeypatch.setattr(os, "scandir", real_scandir)
    assert choose._folder_side(str(tmp_path)) == (12, 64)
