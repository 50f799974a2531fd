"""Map-style datasets: a source of (uint8 image, label) and a transformed view of some of its indices.

A source is read once; the train/val splits are index views over it with their
own transforms, so carving a validation split out of a training set copies nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from litvision.data.decode import read_rgb


class TensorImages:
    """Images held in memory as one uint8 tensor (N, C, H, W): MNIST, CIFAR."""

    def __init__(self, images: torch.Tensor, labels: Sequence[int] | np.ndarray) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"expected uint8 images (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> torch.Tensor:
        return self.images[i]


class FileImages:
    """Images decoded from files on each access (RGB uint8)."""

    def __init__(self, paths: Sequence[Path], labels: Sequence[int] | np.ndarray) -> None:
        self.paths = [Path(p) for p in paths]
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> torch.Tensor:
        return read_rgb(self.paths[i])


ImageSource = TensorImages | FileImages


class ImageSubset(Dataset):
    """(transform(image), label) for `indices` of a source; all indices when None."""

    def __init__(
        self,
        source: ImageSource,
        indices: Sequence[int] | np.ndarray | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.source = source
        self.indices = np.arange(len(source)) if indices is None else np.asarray(indices, dtype=np.int64)
        self.transform = transform

    @property
    def labels(self) -> np.ndarray:
        return self.source.labels[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        j = int(self.indices[i])
        img = self.source.image(j)
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.source.labels[j])
