"""Classification transforms (torchvision.transforms.v2), in the style of torchvision's references.

Images stay uint8 tensors (C, H, W) through every crop, flip, resize and
augmentation: uint8 resampling is several times cheaper than float, and the
tensors the workers pass around are 4x smaller. They become float only at the
end (`ToDtype(float32, scale=True)` then `Normalize`).

Train:  crop (random_resized | pad | none) -> horizontal flip -> RandAugment/TrivialAugment -> float, normalise
Eval:   resize (resize_size, default image_size) -> centre crop image_size -> float, normalise
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torchvision.transforms import InterpolationMode, v2

from litvision.errors import UserError

# ImageNet statistics: what pretrained torchvision/timm weights expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.247, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)

INTERPOLATIONS = {
    "nearest": InterpolationMode.NEAREST,
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
}
AUGMENTS = ("none", "randaugment", "trivialaugment")
TRAIN_CROPS = ("random_resized", "pad", "none")


def interpolation(name: str) -> InterpolationMode:
    try:
        return INTERPOLATIONS[name]
    except KeyError:
        raise UserError(
            f"data.resize_interpolation={name!r} is not one of {sorted(INTERPOLATIONS)}; pick one of those."
        ) from None


@dataclass
class TransformConfig:
    """The data config's transform keys (the same names as in configs/data/*.yaml)."""

    image_size: int = 224
    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD
    train_crop: str = "random_resized"
    crop_scale: Sequence[float] = field(default_factory=lambda: (0.08, 1.0))
    crop_padding: int = 4
    hflip: float = 0.5
    augment: str | None = "none"
    augment_num_ops: int = 2
    augment_magnitude: int = 9
    resize_size: int | None = None
    resize_interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if (self.augment or "none") not in AUGMENTS:
            raise UserError(
                f"data.augment={self.augment!r} is not one of {list(AUGMENTS)}; pick one of those."
            )
        if self.train_crop not in TRAIN_CROPS:
            raise UserError(
                f"data.train_crop={self.train_crop!r} is not one of {list(TRAIN_CROPS)}; pick one of those."
            )
        if len(self.mean) != len(self.std):
            raise UserError(
                f"data.mean {list(self.mean)} and data.std {list(self.std)} need the same length."
            )
        interpolation(self.resize_interpolation)


def _finish(cfg: TransformConfig) -> list[v2.Transform]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(cfg.mean), list(cfg.std))]


def _square_resize(size: int, cfg: TransformConfig) -> v2.Transform:
    return v2.Resize(size, interpolation=interpolation(cfg.resize_interpolation), antialias=True)


def train_transform(cfg: TransformConfig) -> v2.Compose:
    """Random crop, flip and optional policy augmentation on uint8; float and normalise last."""
    size = cfg.image_size
    ops: list[v2.Transform] = []
    if cfg.train_crop == "random_resized":
        ops.append(
            v2.RandomResizedCrop(
                size,
                scale=tuple(cfg.crop_scale),
                interpolation=interpolation(cfg.resize_interpolation),
                antialias=True,
            )
        )
    else:
        # Resize (a no-op when the image already has the size) then a fixed-size square.
        ops += [_square_resize(size, cfg), v2.CenterCrop(size)]
        if cfg.train_crop == "pad" and cfg.crop_padding > 0:
            # The CIFAR recipe: zero-pad by a few pixels and crop back at a random offset.
            ops.append(v2.RandomCrop(size, padding=cfg.crop_padding))
    if cfg.hflip > 0:
        ops.append(v2.RandomHorizontalFlip(cfg.hflip))
    interp = interpolation(cfg.resize_interpolation)
    if cfg.augment == "randaugment":
        ops.append(
            v2.RandAugment(num_ops=cfg.augment_num_ops, magnitude=cfg.augment_magnitude, interpolation=interp)
        )
    elif cfg.augment == "trivialaugment":
        ops.append(v2.TrivialAugmentWide(interpolation=interp))
    return v2.Compose(ops + _finish(cfg))


def eval_transform(cfg: TransformConfig) -> v2.Compose:
    """Resize the short side to `resize_size` (default: image_size), centre-crop image_size, normalise."""
    resize = cfg.resize_size or cfg.image_size
    return v2.Compose([_square_resize(resize, cfg), v2.CenterCrop(cfg.image_size), *_finish(cfg)])
