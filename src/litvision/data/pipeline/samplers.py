"""Samplers whose order depends only on (seed, epoch), so a resumed run sees the same batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence, Sized

import numpy as np
import torch
from torch.utils.data import RandomSampler, WeightedRandomSampler


class _EpochSeeded:
    """Seed + epoch -> a fresh generator per epoch; Lightning calls `set_epoch` before each one."""

    seed: int
    epoch: int

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _epoch_generator(self) -> torch.Generator:
        g = torch.Generator()
        g.manual_seed(self.seed * 100_003 + self.epoch)
        return g


class EpochShuffleSampler(_EpochSeeded, RandomSampler):
    """A RandomSampler re-seeded from (seed, epoch).

    torch's RandomSampler draws from the global RNG, whose state a checkpoint does
    not hold: a resumed run would shuffle differently. Lightning calls `set_epoch`
    each epoch; under DDP it swaps any RandomSampler for a DistributedSampler, which
    is seeded the same way.
    """

    def __init__(self, data_source: Sized, seed: int = 0) -> None:
        super().__init__(data_source)
        self.seed = seed
        self.epoch = 0

    def __iter__(self) -> Iterator[int]:
        yield from torch.randperm(len(self.data_source), generator=self._epoch_generator()).tolist()


def seeded_generator(seed: int) -> torch.Generator:
    """A generator for DataLoader(generator=...): creating a loader's iterator then draws
    its base seed from here instead of the global RNG, so validation and sanity checks do
    not shift the global stream that dropout and augmentation use."""
    g = torch.Generator()
    g.manual_seed(seed)
    return g


class EpochWeightedSampler(_EpochSeeded, WeightedRandomSampler):
    """`WeightedRandomSampler` (with replacement) re-seeded from (seed, epoch), like EpochShuffleSampler."""

    def __init__(self, weights: Sequence[float], num_samples: int | None = None, seed: int = 0) -> None:
        weights = list(weights)
        super().__init__(weights, num_samples or len(weights), replacement=True)
        self.seed = seed
        self.epoch = 0

    def __iter__(self) -> Iterator[int]:
        yield from torch.multinomial(
            self.weights, self.num_samples, True, generator=self._epoch_generator()
        ).tolist()


def class_balanced_weights(labels: Sequence[int] | np.ndarray) -> np.ndarray:
    """Per-sample weights inverse to the frequency of the sample's class: each class is drawn equally often."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels)
    return 1.0 / counts[labels]
