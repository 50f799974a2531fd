"""The classification DataModule every dataset shares: splits, transforms, samplers, loaders.

A dataset subclass only reads its files (`_read`) and, if it can, downloads them
(`prepare_data`). This class carves the validation split out of the training set
(stratified, seeded), attaches the train/eval transforms, picks the sampler and
builds the loaders, and tells the task what it needs: `num_classes`,
`class_names`, `in_channels`, `mean`, `std`.

The datasets (`dm.datasets["train"]`, ...) yield uint8 images. With
`normalize_on="worker"` the loaders yield normalised float batches (made in the
worker right after collation); with `"device"` they yield uint8 batches and
`on_after_batch_transfer` normalises them on the device, for every Trainer stage
(fit, validate, test, predict). `"auto"` (the default) means "device" under a
Trainer on an accelerator and "worker" otherwise, so code that reads the loaders
without a Trainer gets normalised floats.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from litvision.data.datasets.sources import ImageSource, ImageSubset
from litvision.data.pipeline.decode import to_channels
from litvision.data.pipeline.device_cache import DeviceLoader, cache_classification, cache_for, parse_mode
from litvision.data.pipeline.duplicates import check_mode, check_subsets
from litvision.data.pipeline.samplers import (
    EpochShuffleSampler,
    EpochWeightedSampler,
    class_balanced_weights,
    seeded_generator,
)
from litvision.data.pipeline.splits import check_folds, stratified_split, train_val_split
from litvision.data.transforms.classification import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BatchNormalize,
    NormalizingCollate,
    TransformConfig,
    eval_transform,
    normalize_transform,
    train_transform,
)
from litvision.data.transforms.mixing import BatchMixing, mix_training_batch
from litvision.errors import UserError

log = logging.getLogger(__name__)

SAMPLERS = (None, "none", "weighted")


def _init_defaults(cls: type) -> dict[str, Any]:
    """The keyword defaults of `cls.__init__` and of every base class's (subclasses pass **kwargs on)."""
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for name, p in inspect.signature(init).parameters.items():
            if p.default is not inspect.Parameter.empty:
                out[name] = p.default
    return out


@dataclass
class RawSplits:
    """What a dataset reader returns: the training source, an optional test source, and the class names."""

    train: ImageSource
    class_names: list[str]
    test: ImageSource | None = None
    # Index arrays into `train` when the reader decides the split itself (image_folder's test_fraction).
    test_indices: np.ndarray | None = None
    #: The part of `train` the train/val split (or the k folds) is cut from; default: all but the test.
    train_indices: np.ndarray | None = None
    #: The reader's own validation split (the digits cut val and test in one pass); then
    #: `train_indices` is the training split as it is. Unused under k-fold: the folds decide.
    val_indices: np.ndarray | None = None


class ClassificationDataModule(L.LightningDataModule):
    """Shared options; see configs/data/*.yaml for what each one means."""

    default_mean: Sequence[float] = IMAGENET_MEAN
    default_std: Sequence[float] = IMAGENET_STD
    default_in_channels: int = 3
    #: Fixed by the dataset (MNIST 10, CIFAR-100 100), or None when the data decides (image folders).
    known_num_classes: int | None = None

    def __init__(
        self,
        root: str,
        num_classes: int | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        image_size: int = 224,
        in_channels: int | None = None,
        val_fraction: float = 0.1,
        train_fraction: float = 1.0,
        seed: int = 42,
        sampler: str | None = None,
        augment: str | None = "none",
        augment_num_ops: int = 2,
        augment_magnitude: int = 9,
        train_crop: str = "random_resized",
        crop_scale: Sequence[float] = (0.08, 1.0),
        crop_padding: int = 4,
        hflip: float = 0.5,
        resize_size: int | None = None,
        resize_interpolation: str = "bilinear",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        normalize_on: str = "auto",
        download: bool = True,
        pin_memory: bool | None = None,
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
        self.root = Path(root).expanduser()
        self.mixing = BatchMixing(mixup_alpha, cutmix_alpha, mix_prob, random_erasing)
        if sampler not in SAMPLERS:
            raise UserError(f"data.sampler={sampler!r} is not one of null, weighted; pick one of those.")
        if not 0.0 < train_fraction <= 1.0:
            raise UserError(
                f"data.train_fraction={train_fraction} must be in (0, 1]; 0.5 trains on half the training split."
            )
        if not 0.0 <= val_fraction < 1.0:
            raise UserError(
                f"data.val_fraction={val_fraction} must be in [0, 1); 0.2 keeps a fifth for validation."
            )
        self.mean = tuple(mean) if mean is not None else tuple(self.default_mean)
        self.std = tuple(std) if std is not None else tuple(self.default_std)
        self.in_channels = in_channels or self.default_in_channels
        if len(self.mean) != self.in_channels:
            raise UserError(
                f"data.mean has {len(self.mean)} values but data.in_channels={self.in_channels}; "
                "give one mean/std per channel."
            )
        self.transforms = TransformConfig(
            image_size=image_size,
            mean=self.mean,
            std=self.std,
            train_crop=train_crop,
            crop_scale=tuple(crop_scale),
            crop_padding=crop_padding,
            hflip=hflip,
            augment=augment or "none",
            augment_num_ops=augment_num_ops,
            augment_magnitude=augment_magnitude,
            resize_size=resize_size,
            resize_interpolation=resize_interpolation,
            normalize_on=normalize_on,
        )
        self._normalize = BatchNormalize(self.transforms.mean, self.transforms.std)
        if self.known_num_classes is not None:
            self._check_num_classes(self.known_num_classes)
        self.num_classes: int | None = num_classes if num_classes is not None else self.known_num_classes
        self.class_names: list[str] | None = None
        self.datasets: dict[str, ImageSubset] = {}
        # Duplicate/leakage counts found at set-up, for summary.json's `data_checks`.
        self.data_checks: dict = {}
        parse_mode(device_cache)

    # -- inference ------------------------------------------------------------------------
    @classmethod
    def inference_transform(cls, hparams: Mapping[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
        """A decoded uint8 RGB image (3, H, W) -> the float input the model was trained on: the eval
        resize and centre crop, the DataModule's channel count, then its normalisation.

        Built from the DataModule's saved hyper-parameters (a checkpoint's
        `datamodule_hyper_parameters`) without reading its data: predict needs only the checkpoint.
        """
        hp = {**_init_defaults(cls), **dict(hparams)}
        tf = TransformConfig(
            image_size=int(hp.get("image_size") or 224),
            mean=tuple(hp["mean"]) if hp.get("mean") is not None else tuple(cls.default_mean),
            std=tuple(hp["std"]) if hp.get("std") is not None else tuple(cls.default_std),
            resize_size=hp.get("resize_size"),
            resize_interpolation=hp.get("resize_interpolation") or "bilinear",
        )
        channels = int(hp.get("in_channels") or cls.default_in_channels)
        resize, normalize = eval_transform(tf), normalize_transform(tf)

        def apply(image: torch.Tensor) -> torch.Tensor:
            return normalize(resize(to_channels(image, channels)))

        return apply

    # -- what subclasses provide -----------------------------------------------------------
    def _read(self) -> RawSplits:
        raise NotImplementedError

    def _transforms(self) -> tuple[Callable | None, Callable | None]:
        """The per-image (train, eval) transforms, uint8 in and out; None where there is nothing to do."""
        return train_transform(self.transforms), eval_transform(self.transforms)

    # -- shared ------------------------------------------------------------------------
    def _check_num_classes(self, found: int, where: str = "") -> None:
        wanted = self.hparams.num_classes
        if wanted is not None and wanted != found:
            raise UserError(
                f"data.num_classes={wanted} but the data{where} has {found} classes; "
                f"set data.num_classes={found} (or fix the data)."
            )

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        from litvision.data.pipeline.filecache import stat_once

        with stat_once():
            self._setup_splits()

    def _setup_splits(self) -> None:
        self.transforms.normalize_on = self._resolve_normalize_on()
        raw = self._read()
        self._check_num_classes(len(raw.class_names), f" in {self.root}")
        self.class_names = list(raw.class_names)
        self.num_classes = len(self.class_names)
        hp = self.hparams
        labels = raw.train.labels
        if raw.val_indices is not None and hp.num_folds is None:
            train_idx, val_idx = raw.train_indices, raw.val_indices
        else:
            pool = raw.train_indices
            if pool is None and raw.test_indices is not None:
                pool = np.setdiff1d(np.arange(len(labels)), raw.test_indices)
            if pool is None:
                train_idx, val_idx = train_val_split(labels, hp.val_fraction, hp.seed, hp.num_folds, hp.fold)
            else:
                train_idx, val_idx = (
                    pool[i]
                    for i in train_val_split(labels[pool], hp.val_fraction, hp.seed, hp.num_folds, hp.fold)
                )
        if hp.train_fraction < 1.0:
            # A seeded, stratified subset of the training split (small-budget experiments).
            train_idx = train_idx[stratified_split(labels[train_idx], (1.0 - hp.train_fraction,), hp.seed)[0]]
        train_tf, eval_tf = self._transforms()
        self.datasets["train"] = ImageSubset(raw.train, train_idx, train_tf)
        self.datasets["val"] = ImageSubset(raw.train, val_idx, eval_tf)
        if raw.test is not None:
            self.datasets["test"] = ImageSubset(raw.test, None, eval_tf)
        elif raw.test_indices is not None:
            self.datasets["test"] = ImageSubset(raw.train, raw.test_indices, eval_tf)
        for name, ds in self.datasets.items():
            if len(ds) == 0:
                raise UserError(
                    f"The {name} split of {self.root} is empty ({len(labels)} images in all); "
                    f"add images or change data.val_fraction (now {hp.val_fraction})."
                )
        self.data_checks = check_subsets(self.datasets, hp.check_duplicates)
        log.info(
            "%s: %d classes, %s",
            type(self).__name__,
            self.num_classes,
            ", ".join(f"{k} {len(v)}" for k, v in self.datasets.items()),
        )

    def _resolve_normalize_on(self) -> str:
        mode = self.hparams.normalize_on
        if mode != "auto":
            return mode
        trainer = self.trainer
        on_accelerator = trainer is not None and trainer.strategy.root_device.type != "cpu"
        return "device" if on_accelerator else "worker"

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images (N, C, H, W) or (C, H, W) -> normalised float; floats pass through unchanged."""
        return self._normalize(images) if images.dtype == torch.uint8 else images

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if self.transforms.normalize_on == "device" and isinstance(batch, (tuple, list)) and len(batch) == 2:
            images, labels = batch
            if torch.is_tensor(images):
                batch = self.normalize(images), labels
        return mix_training_batch(self, batch)

    def _loader(self, name: str, train: bool = False) -> DataLoader | DeviceLoader:
        cache = cache_for(self, cache_classification)
        if cache is not None:
            return cache.loader(name, train, self.trainer)
        ds = self.datasets[name]
        hp = self.hparams
        sampler: torch.utils.data.Sampler | None = None
        if train:
            if hp.sampler == "weighted":
                sampler = EpochWeightedSampler(class_balanced_weights(ds.labels), len(ds), seed=hp.seed)
            else:
                sampler = EpochShuffleSampler(ds, hp.seed)
        pin = torch.cuda.is_available() if hp.pin_memory is None else hp.pin_memory
        worker_normalize = self.transforms.normalize_on == "worker"
        return DataLoader(
            ds,
            batch_size=hp.batch_size,
            sampler=sampler,
            collate_fn=NormalizingCollate(self.mean, self.std) if worker_normalize else None,
            num_workers=hp.num_workers,
            # Its own generator: a loader's iterator draws its base seed from it, not from the global
            # RNG that dropout uses, so a resumed run replays the uninterrupted one bit for bit.
            generator=seeded_generator(hp.seed),
            persistent_workers=hp.num_workers > 0,
            pin_memory=pin,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        if "test" not in self.datasets:
            from litvision.utils.warn import warn_user

            # Test metrics of the validation split are not test metrics: the terminal must say so.
            warn_user(log, f"{self.root} has no test split: testing on the validation split.")
            return self._loader("val")
        return self._loader("test")
