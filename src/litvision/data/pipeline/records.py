"""Per-sample records held in a few numpy arrays, not lists of Python objects.

A DataLoader worker is a fork of the main process. Reading a Python object from a list (a
`Path`, a dict of tensors) writes its reference count, so the memory page holding it is copied
into the worker: with a list of a million records every worker ends an epoch holding its own copy
of the list (PyTorch issue 13246, "DataLoader worker memory grows with copy-on-read"). numpy arrays
of plain numbers are one object each, whatever their length: reading them copies nothing.

- `PathTable`: file paths as one UTF-8 buffer plus offsets (about 40 bytes a path instead of ~300 for
  a `Path` object in a list).
- `BoxTable`: every image's boxes, labels and flags in flat arrays, sliced by per-image offsets.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np


class PathTable(Sequence[Path]):
    """An immutable sequence of paths stored as one byte buffer and an offset array."""

    def __init__(self, paths: Sequence[str | Path] | Iterator[str | Path]) -> None:
        encoded = [str(p).encode("utf-8", "surrogateescape") for p in paths]
        lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
        self._offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self._offsets[1:])
        self._buffer = np.frombuffer(b"".join(encoded), dtype=np.uint8)

    @classmethod
    def from_arrays(cls, buffer: np.ndarray, offsets: np.ndarray) -> PathTable:
        """The table whose `_buffer` and `_offsets` these are (a cached index)."""
        table = cls([])
        table._buffer, table._offsets = np.asarray(buffer, np.uint8), np.asarray(offsets, np.int64)
        return table

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def text(self, i: int) -> str:
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"PathTable index {i} out of range for {n} paths")
        lo, hi = self._offsets[i], self._offsets[i + 1]
        return self._buffer[lo:hi].tobytes().decode("utf-8", "surrogateescape")

    def texts(self, indices: Sequence[int] | np.ndarray | None = None) -> list[str]:
        """The paths at `indices` (all: None) as strings, decoded in one pass: a million `text(i)` calls
        cost a second and a half of a set-up."""
        idx = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.int64)
        if len(idx) and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"PathTable index out of range for {len(self)} paths")
        idx = np.where(idx < 0, idx + len(self), idx)
        if self._buffer.size and self._buffer.max() >= 0x80:  # non-ASCII: byte offsets are not str offsets
            return [self.text(int(i)) for i in idx]
        whole = self._buffer.tobytes().decode("ascii")
        lo, hi = self._offsets[idx].tolist(), self._offsets[idx + 1].tolist()
        return [whole[a:b] for a, b in zip(lo, hi, strict=True)]

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return Path(self.text(int(i)))

    def __iter__(self) -> Iterator[Path]:
        for i in range(len(self)):
            yield Path(self.text(i))

    def take(self, keep: np.ndarray) -> PathTable:
        """The paths where the boolean mask `keep` is true (or at the given indices)."""
        idx = np.nonzero(keep)[0] if np.asarray(keep).dtype == bool else np.asarray(keep)
        return PathTable(self.text(int(i)) for i in idx) if len(idx) else PathTable([])

    @property
    def nbytes(self) -> int:
        return int(self._buffer.nbytes + self._offsets.nbytes)


class BoxTable:
    """Boxes (float32 XYXY), labels (int64) and a per-box flag (crowd / difficult) of many images.

    Built from per-image arrays; image `i`'s boxes are rows `offsets[i]:offsets[i + 1]`.
    """

    def __init__(
        self,
        boxes: Sequence[np.ndarray],
        labels: Sequence[np.ndarray],
        flags: Sequence[np.ndarray] | None = None,
    ) -> None:
        counts = np.fromiter((len(b) for b in boxes), dtype=np.int64, count=len(boxes))
        self.offsets = np.zeros(len(boxes) + 1, dtype=np.int64)
        np.cumsum(counts, out=self.offsets[1:])
        self.boxes = (
            np.concatenate([np.asarray(b, np.float32).reshape(-1, 4) for b in boxes])
            if len(boxes)
            else np.zeros((0, 4), np.float32)
        )
        self.labels = (
            np.concatenate([np.asarray(x, np.int64).reshape(-1) for x in labels])
            if len(labels)
            else np.zeros(0, np.int64)
        )
        if flags is None:
            self.flags = np.zeros(len(self.labels), dtype=bool)
        else:
            self.flags = (
                np.concatenate([np.asarray(x, bool).reshape(-1) for x in flags])
                if len(flags)
                else np.zeros(0, bool)
            )

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def get(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes [N, 4], labels [N], flags [N]) of image `i`: copies, safe to hand to torch."""
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.boxes[lo:hi].copy(), self.labels[lo:hi].copy(), self.flags[lo:hi].copy()
