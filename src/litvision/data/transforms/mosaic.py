"""Mosaic: four training images tiled around a random centre (YOLOv4, Bochkovskiy et al. 2020,
arXiv:2004.10934 sec. 3.3; as ultralytics' `Mosaic` builds it: a 2S x 2S canvas, a centre drawn
in [0.5 S, 1.5 S], each image resized to longest side S and placed with one corner at the centre,
top-left, top-right, bottom-left, bottom-right). Parts falling off the canvas are cut, their boxes
clipped to what remains of the tile, and boxes left thinner than a pixel dropped with their fields.

No library offers it for torchvision v2 samples, so it is written once here. It wraps the raw
reader (uint8 images, the dataset's own sizes); the usual train transforms then run on the 2S
canvas (and resize it to S). The recipes switch it off for the last epochs (ultralytics'
`close_mosaic=10`, YOLOX's last 15) so that the model ends on images like the test ones:
`MosaicSampler` tells each item whether mosaic is on for the epoch it is drawn in.

    data.augment.mosaic=1.0 data.augment.mosaic_off_epochs=2
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF


class MosaicDataset(Dataset):
    """`dataset[i]` or, with probability `p`, a mosaic of item i and three random others.

    An index may come as `(i, on)` from `MosaicSampler`; `on=False` returns item i alone.
    `center_range` is where the centre may fall, in units of S on each axis. Draws come from torch's
    generator, which the DataLoader seeds per worker (and `seed_everything` in the main process).
    """

    def __init__(
        self,
        dataset: Dataset,
        size: int,
        p: float = 1.0,
        fill: int = 114,
        center_range: tuple[float, float] = (0.5, 1.5),
    ) -> None:
        self.dataset, self.size, self.p, self.fill = dataset, int(size), float(p), int(fill)
        self.center_range = (float(center_range[0]), float(center_range[1]))

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: Any) -> tuple[Any, dict[str, Any]]:
        index, on = index if isinstance(index, tuple) else (index, True)
        if not on or self.p <= 0 or float(torch.rand(())) >= self.p:
            return self.dataset[index]
        others = torch.randint(len(self), (3,)).tolist()
        return self.mosaic([index, *others])

    def mosaic(self, indices: list[int]) -> tuple[tv_tensors.Image, dict[str, Any]]:
        """The mosaic of four items, tiles in the order top-left, top-right, bottom-left, bottom-right."""
        s = self.size
        canvas = torch.full((3, 2 * s, 2 * s), self.fill, dtype=torch.uint8)
        lo, hi = self.center_range
        cx, cy = (int(s * (lo + (hi - lo) * float(torch.rand(())))) for _ in range(2))
        self.last_center = (cx, cy)
        boxes, labels, crowd, area = [], [], [], []
        first_id = 0
        for k, idx in enumerate(indices):
            image, target = self.dataset[idx]
            first_id = target.get("image_id", idx) if k == 0 else first_id
            h, w = image.shape[-2:]
            r = s / max(h, w)
            nh, nw = max(1, round(h * r)), max(1, round(w * r))
            img = TF.resize(image.as_subclass(torch.Tensor), [nh, nw], antialias=True)
            # The tile's place on the canvas: one corner at the centre.
            x0 = cx - nw if k in (0, 2) else cx
            y0 = cy - nh if k in (0, 1) else cy
            # What of it lies on the canvas (the rest is cut).
            vx0, vy0 = max(x0, 0), max(y0, 0)
            vx1, vy1 = min(x0 + nw, 2 * s), min(y0 + nh, 2 * s)
            if vx1 <= vx0 or vy1 <= vy0:
                continue
            canvas[:, vy0:vy1, vx0:vx1] = img[:, vy0 - y0 : vy1 - y0, vx0 - x0 : vx1 - x0]
            b = target["boxes"].as_subclass(torch.Tensor).reshape(-1, 4).float()
            sx, sy = nw / w, nh / h
            moved = b * torch.tensor([sx, sy, sx, sy]) + torch.tensor([x0, y0, x0, y0], dtype=torch.float32)
            clipped = torch.stack(
                [
                    moved[:, 0].clamp(vx0, vx1),
                    moved[:, 1].clamp(vy0, vy1),
                    moved[:, 2].clamp(vx0, vx1),
                    moved[:, 3].clamp(vy0, vy1),
                ],
                -1,
            )
            keep = ((clipped[:, 2] - clipped[:, 0]) >= 1) & ((clipped[:, 3] - clipped[:, 1]) >= 1)
            n = len(b)
            full = ((moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])).clamp(min=1e-6)
            kept_area = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
            own_area = torch.as_tensor(target.get("area", full / (sx * sy)), dtype=torch.float32).reshape(n)
            # The object's area scales with the tile and shrinks with the part of its box still shown.
            area.append((own_area * sx * sy * kept_area / full)[keep])
            boxes.append(clipped[keep])
            labels.append(target["labels"].reshape(n)[keep])
            crowd.append(
                torch.as_tensor(target.get("iscrowd", torch.zeros(n, dtype=torch.int64))).reshape(n)[keep]
            )
        # The sample contract of litvision.data.detection (which imports this module, so it is not
        # imported back).
        out = {
            "boxes": tv_tensors.BoundingBoxes(
                torch.cat(boxes) if boxes else torch.zeros(0, 4), format="XYXY", canvas_size=(2 * s, 2 * s)
            ),
            "labels": torch.cat(labels) if labels else torch.zeros(0, dtype=torch.int64),
            "iscrowd": torch.cat(crowd).long() if crowd else torch.zeros(0, dtype=torch.int64),
            "area": torch.cat(area) if area else torch.zeros(0),
            "image_id": int(first_id),
        }
        return tv_tensors.Image(canvas), out


class MosaicSampler(Sampler):
    """Yields `(index, mosaic_on)`: the wrapped sampler's order, with mosaic off from epoch
    `max_epochs - off_epochs` on. Lightning calls `set_epoch`, passed on to the wrapped sampler."""

    def __init__(self, sampler: Sampler, max_epochs: int | None, off_epochs: int = 0) -> None:
        self.sampler, self.max_epochs, self.off_epochs = sampler, max_epochs, int(off_epochs)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    @property
    def mosaic_on(self) -> bool:
        if self.max_epochs is None or self.max_epochs < 0:
            return True
        return self.epoch < self.max_epochs - self.off_epochs

    def __len__(self) -> int:
        return len(self.sampler)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[tuple[int, bool]]:
        on = self.mosaic_on
        for i in self.sampler:
            yield int(i), on
