"""torchvision.transforms.v2 presets for detection: images and boxes move together.

`image_size` takes two forms, like the two families of detectors:
- an int `S`: a fixed S x S square (SSD/YOLO-style). Train: photometric distortion, zoom-out,
  horizontal flip, resize to S x S. Eval: resize to S x S.
- a dict `{min_size, max_size}` (R-CNN style): shortest side to `min_size`, longest side at most
  `max_size`. Train picks the shortest side at random from `min_size * scale_range` (scale jitter).

Every pipeline ends with `SanitizeBoundingBoxes` (drops boxes left degenerate by a crop or a
resize, with their labels, iscrowd and area) and then the uint8 -> float32 [0, 1] conversion.

Train-time options (`data.augment.*`), each from torchvision v2, in the order they run:
- `photometric` (p): RandomPhotometricDistort (SSD, Liu et al. 2016; torchvision's "ssd" preset, p=0.5);
- `zoom_out` (p): RandomZoomOut onto a canvas up to 2x (SSD's "expand"; torchvision's ssd preset);
- `iou_crop` (p): RandomIoUCrop, a crop keeping an overlap of 0.1-0.9 with some box (SSD's
  sampler; torchvision's ssd preset applies it always, here a probability so that 0 turns it off);
- `hflip` (p): RandomHorizontalFlip;
- `scale_jitter` ([lo, hi] or null): large-scale jitter (Ghiasi et al. 2021, "Simple Copy-Paste",
  arXiv:2012.07177: ScaleJitter to S x [0.1, 2.0], then a crop/pad to S x S; torchvision's "lsj"
  preset); square `image_size` only. It replaces the final resize for training.
Batch-level options, applied by the DataModule: `multi_scale` (a size per batch, `MultiScaleCollate`)
and `mosaic` / `mosaic_off_epochs` (litvision.data.transforms.mosaic).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2 as T

from litvision.errors import UserError


def _sanitize_fields(sample: Any) -> tuple[torch.Tensor, ...]:
    target = sample[1]
    return tuple(target[k] for k in ("labels", "iscrowd", "area") if k in target)


def sanitize() -> T.Transform:
    """Clip boxes to the image, then drop the degenerate ones and their per-box fields."""
    return T.Compose(
        [T.ClampBoundingBoxes(), T.SanitizeBoundingBoxes(min_size=1.0, labels_getter=_sanitize_fields)]
    )


def _parse_size(image_size: Any) -> tuple[str, Any]:
    if isinstance(image_size, int):
        return "square", int(image_size)
    if isinstance(image_size, Sequence) and not isinstance(image_size, str) and len(image_size) == 2:
        return "fixed", (int(image_size[0]), int(image_size[1]))
    if isinstance(image_size, Mapping) and "min_size" in image_size:
        return "shortest", (int(image_size["min_size"]), image_size.get("max_size"))
    raise UserError(
        f"data.image_size={image_size!r} is not understood; use an int (square side), [height, width] "
        "or {min_size: 800, max_size: 1333}."
    )


def detection_transforms(
    train: bool,
    image_size: Any = 512,
    hflip: float = 0.5,
    photometric: float = 0.5,
    zoom_out: float = 0.0,
    scale_range: Sequence[float] = (0.8, 1.2),
    fill: int = 124,
    iou_crop: float = 0.0,
    scale_jitter: Sequence[float] | None = None,
) -> Callable:
    """The train or eval preset for `image_size` (see the module docstring).

    `hflip`, `photometric`, `zoom_out` and `iou_crop` are probabilities (0 turns a step off);
    `zoom_out` places the image on a canvas up to 2x larger, filled with `fill` (helps small objects).
    """
    kind, size = _parse_size(image_size)
    fills = {tv_tensors.Image: fill, "others": 0}
    steps: list[T.Transform] = []
    if train:
        if photometric > 0:
            steps.append(T.RandomPhotometricDistort(p=photometric))
        if zoom_out > 0:
            steps.append(T.RandomZoomOut(fill=fills, side_range=(1.0, 2.0), p=zoom_out))
        if iou_crop > 0:
            # RandomIoUCrop needs its boxes sanitized right after (its docs).
            steps.append(T.RandomApply([T.RandomIoUCrop(), sanitize()], p=iou_crop))
        if hflip > 0:
            steps.append(T.RandomHorizontalFlip(p=hflip))
    if train and scale_jitter:
        if kind != "square":
            raise UserError(
                f"data.augment.scale_jitter needs a square data.image_size (an int), not {image_size!r}."
            )
        lo, hi = (float(v) for v in scale_jitter)
        steps.append(T.ScaleJitter(target_size=(size, size), scale_range=(lo, hi), antialias=True))
        steps.append(T.RandomCrop((size, size), pad_if_needed=True, fill=fills))
    elif kind == "square":
        steps.append(T.Resize((size, size), antialias=True))
    elif kind == "fixed":
        steps.append(T.Resize(size, antialias=True))
    else:
        min_size, max_size = size
        max_size = int(max_size) if max_size is not None else None
        if train and tuple(scale_range) != (1.0, 1.0):
            lo, hi = scale_range
            sizes = sorted({int(round(min_size * s)) for s in torch.linspace(lo, hi, 7).tolist()})
            steps.append(T.RandomShortestSize(min_size=sizes, max_size=max_size, antialias=True))
        else:
            steps.append(T.Resize(min_size, max_size=max_size, antialias=True))
    steps.append(sanitize())
    steps.append(T.ToDtype(torch.float32, scale=True))
    return T.Compose(steps)


def multi_scale_sizes(spec: Any) -> list[int]:
    """The sizes `data.augment.multi_scale` allows: a list of sides, or {min, max, step}."""
    if spec is None or spec is False:
        return []
    if isinstance(spec, Mapping):
        lo, hi, step = int(spec["min"]), int(spec["max"]), int(spec.get("step", 32))
        sizes = list(range(lo, hi + 1, step))
    elif isinstance(spec, Sequence) and not isinstance(spec, str):
        sizes = [int(v) for v in spec]
    else:
        sizes = []
    if not sizes or min(sizes) < 8:
        raise UserError(
            f"data.augment.multi_scale={spec!r} is not understood; use a list of sides ([96, 128, 160]) "
            "or {min: 96, max: 160, step: 32}."
        )
    return sizes


class MultiScaleCollate:
    """Resizes every image of a training batch (and its boxes) to one side drawn per batch from
    `sizes`, then collates with `collate`: multi-scale training as YOLO (v2 onwards, Redmon and
    Farhadi 2017 sec. 2) and YOLOX do it, on the batch. Sizes should be multiples of the model's
    largest stride. The draw uses torch's generator (seeded per DataLoader worker)."""

    def __init__(self, sizes: Sequence[int], collate: Callable) -> None:
        self.sizes, self.collate = [int(s) for s in sizes], collate

    def __call__(self, batch: Sequence[tuple[Any, dict]]) -> Any:
        side = self.sizes[int(torch.randint(len(self.sizes), ()))]
        resize = T.Resize((side, side), antialias=True)
        out = []
        for image, target in batch:
            h, w = image.shape[-2:]
            image, target = resize(image, target)
            if "area" in target:
                target["area"] = target["area"] * (side / w) * (side / h)
            out.append((image, target))
        return self.collate(out)
