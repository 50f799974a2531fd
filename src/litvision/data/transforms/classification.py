"""Classification transforms (torchvision.transforms.v2), in the style of torchvision's references.

Images stay uint8 tensors (C, H, W) through every crop, flip, resize and
augmentation: uint8 resampling is several times cheaper than float. The datasets
yield uint8; whole batches become float only at the end (`ToDtype(float32,
scale=True)` then `Normalize`), either in the loader worker right after
collation (`normalize_on="worker"`, `NormalizingCollate`) or after the batch
reaches the device (`"device"`, so the workers pass uint8 batches, 4x smaller).
Normalising a batch costs a quarter of normalising its images one by one and
stacking the floats (see bench/bench_image_pipeline.py). `"auto"` (the default)
picks the device when the Trainer runs on an accelerator, the worker otherwise.

Train:  crop (random_resized | pad | none) -> horizontal flip -> RandAugment/TrivialAugment   (uint8)
Eval:   resize (resize_size, default image_size) -> centre crop image_size                  (uint8)
Batch:  ToDtype(float32, scale=True) -> Normalize(mean, std)
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
NORMALIZE_ON = ("auto", "device", "worker")


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
    normalize_on: str = "auto"

    def __post_init__(self) -> None:
        if (self.augment or "none") not in AUGMENTS:
            raise UserError(
                f"data.augment={self.augment!r} is not one of {list(AUGMENTS)}; pick one of those."
            )
        if self.train_crop not in TRAIN_CROPS:
            raise UserError(
                f"data.train_crop={self.train_crop!r} is not one of {list(TRAIN_CROPS)}; pick one of those."
            )
        if self.normalize_on not in NORMALIZE_ON:
            raise UserError(
                f"data.normalize_on={self.normalize_on!r} is not one of {list(NORMALIZE_ON)}; pick one of those."
            )
        if len(self.mean) != len(self.std):
            raise UserError(
                f"data.mean {list(self.mean)} and data.std {list(self.std)} need the same length."
            )
        interpolation(self.resize_interpolation)


def normalize_transform(cfg: TransformConfig) -> v2.Compose:
    """uint8 images (a batch or one) -> float in [0, 1] -> normalised with the dataset's mean/std.

    Normalize works in place on the new tensor ToDtype made from the uint8 input: one float
    allocation instead of two. Only give it uint8 images.
    """
    return v2.Compose(
        [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(cfg.mean), list(cfg.std), inplace=True)]
    )


class BatchNormalize:
    """uint8 images (N, C, H, W) or (C, H, W) -> normalised float32 on their own device.

    The float operations of ToDtype(float32, scale=True) then Normalize, so the result is bit-identical,
    but with mean and std kept on each device they are used on: torchvision's normalize builds them
    from Python lists at every call, and on a GPU that is a synchronous host-to-device copy each
    (two GPU syncs per training step when batches are normalised after the transfer).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean, self.std = list(mean), list(std)
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        stats = self._on.get(images.device)
        if stats is None:
            stats = tuple(
                torch.tensor(v, dtype=torch.float32).view(-1, 1, 1).to(images.device)
                for v in (self.mean, self.std)
            )
            self._on[images.device] = stats
        mean, std = stats
        return images.to(torch.float32).mul_(1.0 / 255).sub_(mean).div_(std)

    def __getstate__(self) -> dict:
        return {"mean": self.mean, "std": self.std, "_on": {}}  # device tensors stay in their process


class NormalizingCollate:
    """Collate (uint8 image, label) pairs, then make the image batch float and normalise it.

    In a loader worker the float batch is written straight into shared memory, as
    torch's default_collate does, so that handing it to the main process copies nothing.
    The result equals ToDtype(float32, scale=True) then Normalize, image by image.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean, self.std = list(mean), list(std)

    def __call__(self, samples: list) -> list:
        from torch.utils.data import default_collate, get_worker_info

        images, labels = default_collate(samples)
        if images.dtype != torch.uint8:
            return [images, labels]
        out = None
        if get_worker_info() is not None:
            try:
                proto = torch.empty(0, dtype=torch.float32)
                storage = proto._typed_storage()._new_shared(images.numel(), device="cpu")
                out = proto.new(storage).resize_(images.shape)
            except (AttributeError, RuntimeError):  # private API: fall back to a plain tensor
                out = None
        if out is None:
            out = torch.empty(images.shape, dtype=torch.float32)
        out.copy_(images).mul_(1.0 / 255)
        return [v2.functional.normalize(out, self.mean, self.std, inplace=True), labels]


def _square_resize(size: int, cfg: TransformConfig) -> v2.Transform:
    return v2.Resize(size, interpolation=interpolation(cfg.resize_interpolation), antialias=True)


def train_transform(cfg: TransformConfig) -> v2.Compose:
    """Random crop, flip and optional policy augmentation, uint8 in and out."""
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
    return v2.Compose(ops)


def eval_transform(cfg: TransformConfig) -> v2.Compose:
    """Resize the short side to `resize_size` (default: image_size), centre-crop image_size; uint8."""
    resize = cfg.resize_size or cfg.image_size
    return v2.Compose([_square_resize(resize, cfg), v2.CenterCrop(cfg.image_size)])
