"""Samplers whose order depends only on (seed, epoch), so a resumed run sees the same batches."""

from __future__ import annotations

from collections.abc import Iterator, Sized

import torch
from torch.utils.data import RandomSampler


class EpochShuffleSampler(RandomSampler):
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

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self.seed * 100_003 + self.epoch)
        yield from torch.randperm(len(self.data_source), generator=g).tolist()
