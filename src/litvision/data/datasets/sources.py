"""Map-style datasets: a source of (uint8 image, label) and a transformed view of some of its indices.

A source is read once; the train/val splits are index views over it with their
own transforms, so carving a validation split out of a training set copies nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from litvision.data.pipeline.decode import UnreadableImage, read_rgb, to_channels
from litvision.errors import UserError

log = logging.getLogger(__name__)


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
    """Images decoded from files on each access (uint8, `channels` of them: 3 RGB, 1 grey), by the one
    reader (pipeline/decode.read_rgb) and its one channel conversion (to_channels), as predict reads them.

    `skip_unreadable` (data.skip_corrupt): a file that passed the up-front header check but
    fails to decode is left out when it is read (see `ImageSubset`), with a warning on the
    terminal the first time this process meets it; it is not decoded again.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        labels: Sequence[int] | np.ndarray,
        skip_unreadable: bool = False,
        channels: int = 3,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.labels = np.asarray(labels, dtype=np.int64)
        self.skip_unreadable = skip_unreadable
        self.channels = channels
        # Per process (each DataLoader worker has its own): index -> the decode error.
        self.unreadable: dict[int, UnreadableImage] = {}
        # A folder where every process (DataLoader workers included) notes the files it skipped, so
        # that the main process can count them for summary.json; set by the DataModule.
        self.skip_log: Path | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def skipped_files(self) -> list[str]:
        """The files any process failed to decode and skipped (read from `skip_log`)."""
        if self.skip_log is None or not self.skip_log.is_dir():
            return sorted(str(self.paths[i]) for i in self.unreadable)
        lines = {line for p in self.skip_log.glob("*.txt") for line in p.read_text("utf-8").splitlines()}
        return sorted(lines)

    def image(self, i: int) -> torch.Tensor:
        if i in self.unreadable:
            raise self.unreadable[i]
        try:
            return to_channels(read_rgb(self.paths[i]), self.channels)
        except UnreadableImage as e:
            if self.skip_unreadable:
                from litvision.utils.warn import warn_user

                self.unreadable[i] = e
                if self.skip_log is not None:
                    with open(self.skip_log / f"{os.getpid()}.txt", "a", encoding="utf-8") as f:
                        f.write(f"{self.paths[i]}\n")
                # Every rank and worker reads different files: whoever meets the file says so.
                warn_user(
                    log,
                    f"Skipping unreadable image {self.paths[i]} ({e.reason}; data.skip_corrupt=true): "
                    "the next readable image of the split takes its place.",
                    all_ranks=True,
                )
            raise


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
        # A file that fails to decode (data.skip_corrupt) is replaced by the next readable one of
        # this view: a map-style dataset cannot shrink in mid-epoch, and the batch keeps its size.
        n = len(self.indices)
        for step in range(n):
            j = int(self.indices[(i + step) % n])
            try:
                img = self.source.image(j)
            except UnreadableImage:
                if not getattr(self.source, "skip_unreadable", False):
                    raise
                continue
            if self.transform is not None:
                img = self.transform(img)
            return img, int(self.source.labels[j])
        raise UserError(
            f"None of the {n} images of this split can be decoded (data.skip_corrupt=true skipped them all); "
            "check the data folder."
        )
