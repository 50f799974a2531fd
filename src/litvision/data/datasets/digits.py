"""scikit-learn's handwritten digits: 1,797 real 8x8 images that ship inside scikit-learn.

The default experiment trains on it with no download and no GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from litvision.data.datasets.registry import register_dataset
from litvision.data.pipeline.device_cache import (
    CachedSplits,
    DeviceLoader,
    cache_for,
    cache_tensors,
    parse_mode,
)
from litvision.data.pipeline.duplicates import check_arrays, check_mode
from litvision.data.pipeline.samplers import EpochShuffleSampler, seeded_generator
from litvision.data.pipeline.splits import check_folds, stratified_split, train_val_split
from litvision.data.transforms.mixing import BatchMixing, mix_training_batch
from litvision.errors import UserError

# Pixel values are 0..16; mean/std of the whole set after scaling to [0, 1].
DIGITS_MEAN, DIGITS_STD = 0.3050, 0.3817


@register_dataset(
    "digits",
    kind="classification",
    classes=[str(i) for i in range(10)],
    channels=1,
    native_size=8,
    mean=(DIGITS_MEAN,),
    std=(DIGITS_STD,),
    # Ships inside scikit-learn: the fixture writes nothing.
    fixture="litvision.data.fixtures:no_fixture",
)
class DigitsDataModule(L.LightningDataModule):
    """Stratified, seeded train/val/test split of `sklearn.datasets.load_digits`.

    `classes` keeps a subset of the digits (e.g. [0, 1, 2, 3, 4]) relabelled 0..k-1,
    for transfer-learning experiments between digit subsets.
    """

    #: Fixed by the data (sklearn's digits are 8x8): what export and benchmarks feed a model trained here.
    image_size = 8

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
        num_folds: int | None = None,
        fold: int | None = None,
        check_duplicates: str = "exact",
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        mix_prob: float = 1.0,
        random_erasing: float = 0.0,
        device_cache: str | bool = "auto",
        device_cache_max_gb: float = 4.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_folds(num_folds, fold)
        check_mode(check_duplicates)
        self.mixing = BatchMixing(mixup_alpha, cutmix_alpha, mix_prob, random_erasing)
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
        # Duplicate/leakage counts found at set-up, for summary.json's `data_checks`.
        self.data_checks: dict = {}
        parse_mode(device_cache)

    @classmethod
    def inference_transform(cls, hparams: Mapping[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
        """A decoded uint8 RGB image (3, H, W) -> the digits' input: grey, 8x8, scaled to [0, 1] and
        normalised like the training images (bright strokes on a dark background, as in the data)."""
        from torchvision.transforms.v2.functional import resize

        from litvision.data.pipeline.decode import to_channels

        def apply(image: torch.Tensor) -> torch.Tensor:
            grey = to_channels(image, 1)
            small = resize(grey, [8, 8], antialias=True).float() / 255.0
            return (small - DIGITS_MEAN) / DIGITS_STD

        return apply

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
        if hp.num_folds is None:
            train_idx, val_idx, test_idx = stratified_split(y, (hp.val_fraction, hp.test_fraction), hp.seed)
        else:
            # k-fold: the test split is held out first, the folds cover the rest.
            rest, test_idx = stratified_split(y, (hp.test_fraction,), hp.seed)
            train_idx, val_idx = (
                rest[i] for i in train_val_split(y[rest], 0.0, hp.seed, hp.num_folds, hp.fold)
            )
        if hp.train_fraction < 1.0:
            # A seeded, stratified subset of the training split (small-budget experiments).
            train_idx = train_idx[stratified_split(y[train_idx], (1.0 - hp.train_fraction,), hp.seed)[0]]
        splits = {"train": train_idx, "val": val_idx, "test": test_idx}
        for name, idx in splits.items():
            self.datasets[name] = TensorDataset(images[idx], labels[idx])
        pixels = x.astype(np.uint8).reshape(-1, 1, 8, 8)  # the raw 0..16 values, before scaling
        self.data_checks = check_arrays({k: pixels[v] for k, v in splits.items()}, hp.check_duplicates)

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

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        return mix_training_batch(self, batch)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
