"""scikit-learn's handwritten digits: 1,797 real 8x8 images that ship inside scikit-learn.

The default experiment trains on it with no download and no GPU.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from litvision.data.device_cache import CachedSplits, DeviceLoader, cache_for, cache_tensors, parse_mode
from litvision.data.samplers import EpochShuffleSampler, seeded_generator
from litvision.data.splits import stratified_split
from litvision.errors import UserError

# Pixel values are 0..16; mean/std of the whole set after scaling to [0, 1].
DIGITS_MEAN, DIGITS_STD = 0.3050, 0.3817


class DigitsDataModule(L.LightningDataModule):
    """Stratified, seeded train/val/test split of `sklearn.datasets.load_digits`.

    `classes` keeps a subset of the digits (e.g. [0, 1, 2, 3, 4]) relabelled 0..k-1,
    for transfer-learning experiments between digit subsets.
    """

    def __init__(
        self,
        num_classes: int | None = 10,
        batch_size: int = 64,
        val_fraction: float = 0.15,
        test_fraction: float = 0.2,
        seed: int = 42,
        num_workers: int = 0,
        classes: list[int] | None = None,
        train_fraction: float = 1.0,
        in_channels: int = 1,
        device_cache: str | bool = "auto",
        device_cache_max_gb: float = 4.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.classes = list(classes) if classes is not None else list(range(10))
        self.class_names = [str(c) for c in self.classes]
        if num_classes is not None and num_classes != len(self.classes):
            raise UserError(
                f"data.num_classes={num_classes} but the digits data has {len(self.classes)} classes "
                f"({self.class_names}); set data.num_classes={len(self.classes)}."
            )
        self.num_classes = len(self.classes)
        if in_channels != 1:
            raise UserError(
                f"data.in_channels={in_channels}, but the digits are grey images; set data.in_channels=1."
            )
        # What models (`${data.in_channels}`) and the sample-grid callback read from every DataModule.
        self.in_channels = 1
        self.mean, self.std = (DIGITS_MEAN,), (DIGITS_STD,)
        self.datasets: dict[str, TensorDataset] = {}
        parse_mode(device_cache)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        keep = np.isin(y, self.classes)
        x, y = x[keep], y[keep]
        y = np.searchsorted(np.asarray(sorted(self.classes)), y)
        images = (torch.tensor(x, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0 - DIGITS_MEAN) / DIGITS_STD
        labels = torch.tensor(y, dtype=torch.long)
        hp = self.hparams
        train_idx, val_idx, test_idx = stratified_split(y, (hp.val_fraction, hp.test_fraction), hp.seed)
        if hp.train_fraction < 1.0:
            # A seeded, stratified subset of the training split (small-budget experiments).
            train_idx = train_idx[stratified_split(y[train_idx], (1.0 - hp.train_fraction,), hp.seed)[0]]
        for name, idx in (("train", train_idx), ("val", val_idx), ("test", test_idx)):
            self.datasets[name] = TensorDataset(images[idx], labels[idx])

    def _cache(self) -> CachedSplits | None:
        hp = self.hparams
        splits = {k: tuple(ds.tensors) for k, ds in self.datasets.items()}
        return cache_tensors(
            splits,
            hp.device_cache,
            hp.device_cache_max_gb,
            self.trainer,
            hp.batch_size,
            hp.seed,
            "the digits splits",
        )

    def _loader(self, name: str, train: bool = False) -> DataLoader | DeviceLoader:
        cache = cache_for(self, DigitsDataModule._cache)
        if cache is not None:
            return cache.loader(name, train, self.trainer)
        ds = self.datasets[name]
        return DataLoader(
            ds,
            batch_size=self.hparams.batch_size,
            sampler=EpochShuffleSampler(ds, self.hparams.seed) if train else None,
            num_workers=self.hparams.num_workers,
            generator=seeded_generator(self.hparams.seed),
            persistent_workers=self.hparams.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
