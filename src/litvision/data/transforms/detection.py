"""torchvision.transforms.v2 presets for detection: images and boxes move together.

`image_size` takes two forms, like the two families of detectors:
- an int `S`: a fixed S x S square (SSD/YOLO-style). Train: photometric distortion, zoom-out,
  horizontal flip, resize to S x S. Eval: resize to S x S.
- a dict `{min_size, max_size}` (R-CNN style): shortest side to `min_size`, longest side at most
  `max_size`. Train picks the shortest side at random from `min_size * scale_range` (scale jitter).

Every pipeline ends with `SanitizeBoundingBoxes` (drops boxes left degenerate by a crop or a
resize, with their labels, iscrowd and area) and then the uint8 -> float32 [0, 1] conversion.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
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
) -> Callable:
    """The train or eval preset for `image_size` (see the module docstring).

    `hflip`, `photometric` and `zoom_out` are probabilities (0 turns a step off); `zoom_out`
    places the image on a canvas up to 2x larger, filled with `fill` (helps small objects).
    """
    kind, size = _parse_size(image_size)
    steps: list[T.Transform] = []
    if train:
        if photometric > 0:
            steps.append(T.RandomPhotometricDistort(p=photometric))
        if zoom_out > 0:
            steps.append(
                T.RandomZoomOut(fill={"Image": fill, "others": 0}, side_range=(1.0, 2.0), p=zoom_out)
            )
        if hflip > 0:
            steps.append(T.RandomHorizontalFlip(p=hflip))
    if kind == "square":
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
