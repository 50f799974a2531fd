"""Seeded, stratified splits: the same seed gives the same split on every machine."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def stratified_split(
    labels: Sequence[int] | np.ndarray,
    fractions: Sequence[float],
    seed: int,
) -> list[np.ndarray]:
    """Split indices into len(fractions) + 1 parts (the first part takes the rest), per class.

    `fractions` are the sizes of the later parts, e.g. (val, test). Each class is
    shuffled with its own seeded generator and cut in the same proportions, so
    every part has every class (when the class has enough samples) and adding a
    class does not reshuffle the others.
    """
    labels = np.asarray(labels)
    if any(f < 0 for f in fractions) or sum(fractions) >= 1:
        raise ValueError(f"split fractions {list(fractions)} must be >= 0 and sum to less than 1")
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng = np.random.default_rng([seed, int(cls)])
        idx = idx[rng.permutation(len(idx))]
        start = 0
        sizes = [int(round(f * len(idx))) for f in fractions]
        for part, size in zip(parts[1:], sizes):
            part.extend(idx[start : start + size].tolist())
            start += size
        parts[0].extend(idx[start:].tolist())
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
