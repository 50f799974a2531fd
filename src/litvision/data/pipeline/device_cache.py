"""Device-resident classification data: each split uploaded once, augmented on the device in batches.

    litvision train experiment=resnet18_cifar10 trainer=gpu_fast        # device_cache=auto turns it on
    litvision train experiment=resnet18_cifar10 trainer=gpu data.device_cache=true data.device_cache_max_gb=8
    litvision train experiment=lenet_mnist trainer=cpu data.device_cache=true   # same code on the CPU

For data that fit in device memory as uint8 (digits, MNIST, CIFAR: under 200 MB) the
loader-worker pipeline (index, transform one image, collate, pin, copy) costs more than a
training step on a fast GPU. The approach of the fastest CIFAR-10 scripts (Keller Jordan's
airbench, github.com/KellerJordan/cifar10-airbench) is to keep the dataset on the GPU and
augment whole batches there. This module does that with the worker pipeline's semantics
(data/transforms/classification.py), so switching it on changes the speed, not the experiment:

- **Deterministic part.** Resize + CenterCrop to `image_size` (train_crop pad|none) and the
  whole eval transform are applied once, at upload, by the worker pipeline's own torchvision
  transforms on the CPU (v2 applies them to a batch as to each image): the cached images are
  byte-identical to what the workers would produce, and no step pays for a resize.
- **Random part**, per image, from a generator seeded by (seed, epoch, rank) on the device:
  zero-padded random crop (`v2.RandomCrop(size, padding)`: offsets uniform in 0..2*padding)
  and horizontal flip with probability `hflip` (`v2.RandomHorizontalFlip`).
- **Order.** The epoch's indices come from the worker pipeline's own seeded sampler
  (EpochShuffleSampler / EpochWeightedSampler, a few hundred KB of int64 per epoch), so one
  process sees the same batches in the same order. Under DDP they are split as
  `torch.utils.data.DistributedSampler` splits them: padded to a multiple of the world size by
  repeating the first indices, rank r taking every world-th index from r. Validation and test
  keep their order and are split the same way, as Lightning's distributed sampler does.
- **Normalisation.** x / 255 then (x - mean) / std in float32, as `NormalizingCollate`.

Per-image policies (train_crop=random_resized, augment=randaugment|trivialaugment) have no
batched equivalent here: `auto` keeps the worker pipeline with an info line, `true` refuses.
Batch-level augmentations that run in the DataModule's `on_after_batch_transfer` see these
batches as they see the workers' (Lightning calls the hook for any loader).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from litvision.data.transforms.classification import BatchNormalize
from litvision.errors import UserError

log = logging.getLogger(__name__)

MODES = ("auto", "true", "false")
# Upload the eval/resize transforms in chunks: bounded host memory for the float intermediates.
_CHUNK = 4096


def parse_mode(value: Any) -> str:
    """`data.device_cache` as one of auto | true | false (YAML gives booleans for true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    mode = str(value).strip().lower()
    if mode not in MODES:
        raise UserError(f"data.device_cache={value!r} is not one of auto, true, false; pick one of those.")
    return mode


def unsupported_reason(train_crop: str, augment: str | None) -> str | None:
    """Why the training transforms cannot run batched on the device, or None when they can."""
    if train_crop == "random_resized":
        return "data.train_crop=random_resized (a per-image scale and aspect ratio)"
    if (augment or "none") != "none":
        return f"data.augment={augment} (a per-image policy)"
    return None


def decide(
    mode: str,
    nbytes: int,
    max_gb: float,
    device: torch.device,
    unsupported: str | None = None,
    where: str = "data",
) -> bool:
    """Whether to cache: `true` insists (bad fit -> UserError), `auto` only on an accelerator and when it fits."""
    if mode == "false":
        return False
    size_gb = nbytes / 1e9
    if mode == "true":
        if unsupported:
            raise UserError(
                f"data.device_cache=true, but {unsupported} cannot run batched on the device; "
                "set data.device_cache=false (or auto), or drop that augmentation."
            )
        if size_gb > max_gb:
            raise UserError(
                f"data.device_cache=true, but {where} take {size_gb:.3g} GB on the device, over "
                f"data.device_cache_max_gb={max_gb:g}; raise data.device_cache_max_gb or set data.device_cache=false."
            )
        return True
    if device.type == "cpu":
        return False
    if unsupported:
        log.info("data.device_cache=auto: worker pipeline, since %s runs per image.", unsupported)
        return False
    if size_gb > max_gb:
        log.info(
            "data.device_cache=auto: worker pipeline, since %s take %.3g GB, over data.device_cache_max_gb=%g.",
            where,
            size_gb,
            max_gb,
        )
        return False
    log.info("data.device_cache=auto: %s (%.3g GB) cached on %s.", where, size_gb, device)
    return True


def trainer_device(trainer: Any) -> torch.device:
    """The Trainer's device (the process's own GPU under DDP), or the CPU without a Trainer."""
    if trainer is None:
        return torch.device("cpu")
    return trainer.strategy.root_device


def rank_and_world(trainer: Any) -> tuple[int, int]:
    """(global rank, world size) from the Trainer, else from an initialised process group, else (0, 1)."""
    if trainer is not None:
        return int(trainer.global_rank), int(trainer.world_size)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard(indices: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This rank's part of `indices`, exactly as `DistributedSampler(drop_last=False)` takes it."""
    if world == 1:
        return indices
    n = len(indices)
    total = -(-n // world) * world
    pad = total - n
    if pad:
        reps = -(-pad // n)
        indices = torch.cat([indices, indices.repeat(reps)[:pad]])
    return indices[rank:total:world]


class DeviceShardSampler:
    """The epoch's indices into a cached split: from `base` (a seeded sampler) or in order, then sharded.

    `set_epoch` is what Lightning calls on a loader's `sampler` before each epoch.
    """

    def __init__(self, n: int, base: Any = None, rank: int = 0, world: int = 1) -> None:
        self.n, self.base, self.rank, self.world = n, base, rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.base is not None and hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def indices(self) -> torch.Tensor:
        order = torch.arange(self.n) if self.base is None else torch.as_tensor(list(iter(self.base)))
        return shard(order.long(), self.rank, self.world)

    def __iter__(self) -> Iterator[int]:
        yield from self.indices().tolist()

    def __len__(self) -> int:
        n = len(self.base) if self.base is not None else self.n
        return -(-n // self.world)


class BatchAugment:
    """Zero-padded random crop and horizontal flip of a uint8 batch (N, C, H, W), per image."""

    def __init__(self, padding: int, hflip: float) -> None:
        self.padding, self.hflip = int(padding), float(hflip)

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n, c, h, w = x.shape
        p = self.padding
        if p > 0:
            # Two gathers (rows, then columns) of the zero-padded batch: one kernel each on a GPU,
            # no host sync, and twice as fast on the CPU as indexing all four dimensions at once.
            padded = torch.nn.functional.pad(x, (p, p, p, p))
            dy = torch.randint(0, 2 * p + 1, (n,), device=x.device, generator=gen)
            dx = torch.randint(0, 2 * p + 1, (n,), device=x.device, generator=gen)
            rows = (dy[:, None] + torch.arange(h, device=x.device)).view(n, 1, h, 1)
            x = torch.gather(padded, 2, rows.expand(n, c, h, w + 2 * p))
            cols = (dx[:, None] + torch.arange(w, device=x.device)).view(n, 1, 1, w)
            x = torch.gather(x, 3, cols.expand(n, c, h, w))
        if self.hflip > 0:
            flip = torch.rand(n, device=x.device, generator=gen) < self.hflip
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return x


class DeviceLoader:
    """Batches of a split cached on one device: (normalised float32 images, int64 labels).

    An iterable with a length and a `sampler`, which is all Lightning needs of a loader.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        sampler: DeviceShardSampler,
        mean: Sequence[float] | None,
        std: Sequence[float] | None,
        augment: BatchAugment | None = None,
        seed: int = 0,
    ) -> None:
        self.images, self.labels = images, labels
        self.batch_size = int(batch_size)
        self.sampler = sampler
        # Lightning reads a loader's batch_sampler (shuffle checks) and calls sampler.set_epoch.
        self.batch_sampler = None
        self.augment = augment
        self.seed = seed
        self.device = images.device
        # Digits are cached already normalised (float): mean/std None.
        self.normalize = None if mean is None else BatchNormalize(mean, std)

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)

    def _generator(self) -> torch.Generator:
        gen = torch.Generator(device=self.device)
        # Distinct streams per epoch and rank, as each DDP rank's workers draw their own crops.
        gen.manual_seed((self.seed * 100_003 + self.sampler.epoch) * 1_009 + self.sampler.rank)
        return gen

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalize is None or x.dtype != torch.uint8:
            return x
        return self.normalize(x)

    def _batch(self, b: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        x = self.images[b]
        if self.augment is not None:
            x = self.augment(x, gen)
        return self._normalize(x)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        idx = self.sampler.indices().to(self.device, non_blocking=True)
        gen = self._generator() if self.augment is not None else None
        for start in range(0, len(idx), self.batch_size):
            b = idx[start : start + self.batch_size]
            if self.device.type == "cpu":
                # A batch is a few hundred KB: split over intra-op threads it costs more in thread
                # handoffs than it saves (20x on a busy 2-core VM), so prepare it on one thread,
                # as a DataLoader worker does; the training step keeps all of them.
                threads = torch.get_num_threads()
                torch.set_num_threads(1)
                try:
                    x = self._batch(b, gen)
                finally:
                    torch.set_num_threads(threads)
            else:
                x = self._batch(b, gen)
            yield x, self.labels[b]


def transformed(images: torch.Tensor, transform: Any) -> torch.Tensor:
    """Apply a deterministic uint8 transform (resize, centre crop) to all images, in chunks."""
    if transform is None:
        return images
    chunks = [transform(images[i : i + _CHUNK]) for i in range(0, len(images), _CHUNK)]
    return torch.cat(chunks) if chunks else images


def nbytes(*tensors: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def epoch_sampler(labels: Any, sampler: str | None, seed: int) -> Any:
    """The worker pipeline's training sampler for these labels (see ClassificationDataModule._loader)."""
    from litvision.data.pipeline.samplers import (
        EpochShuffleSampler,
        EpochWeightedSampler,
        class_balanced_weights,
    )

    if sampler == "weighted":
        return EpochWeightedSampler(class_balanced_weights(labels), len(labels), seed=seed)
    return EpochShuffleSampler(range(len(labels)), seed)


class CachedSplits:
    """Splits on one device and what their loaders need; `loader(name)` replaces a DataLoader."""

    def __init__(
        self,
        splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
        batch_size: int,
        seed: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        augment: BatchAugment | None = None,
        sampler: str | None = None,
    ) -> None:
        self.splits = splits
        self.batch_size, self.seed = batch_size, seed
        self.mean, self.std = mean, std
        self.augment = augment
        self.sampler = sampler

    @property
    def device(self) -> torch.device:
        return next(iter(self.splits.values()))[0].device

    def loader(self, name: str, train: bool = False, trainer: Any = None) -> DeviceLoader:
        images, labels = self.splits[name]
        rank, world = rank_and_world(trainer)
        base = epoch_sampler(labels.cpu().numpy(), self.sampler, self.seed) if train else None
        return DeviceLoader(
            images,
            labels,
            self.batch_size,
            DeviceShardSampler(len(labels), base, rank, world),
            self.mean,
            self.std,
            augment=self.augment if train else None,
            seed=self.seed,
        )


def cache_classification(dm: Any) -> CachedSplits | None:
    """Cache a set-up ClassificationDataModule's splits on its Trainer's device, if `data.device_cache` says so."""
    from torchvision.transforms import v2

    from litvision.data.datasets.sources import TensorImages
    from litvision.data.transforms.classification import interpolation

    hp = dm.hparams
    mode = parse_mode(hp.device_cache)
    if mode == "false":
        return None
    tf = dm.transforms
    in_memory = all(isinstance(ds.source, TensorImages) for ds in dm.datasets.values())
    if not in_memory and mode == "auto":
        return None  # image folders: nothing to say, the worker pipeline is the only one
    unsupported = (
        "images decoded from files (only in-memory datasets: MNIST, CIFAR)"
        if not in_memory
        else unsupported_reason(tf.train_crop, tf.augment)
    )
    size = tf.image_size
    total = 0
    if in_memory:
        # uint8 images at the model's size plus int64 labels: what will sit on the device.
        total = sum(len(ds) * (ds.source.images.shape[1] * size * size + 8) for ds in dm.datasets.values())
    device = trainer_device(dm.trainer)
    if not decide(
        mode, total, float(hp.device_cache_max_gb), device, unsupported, f"the {type(dm).__name__} splits"
    ):
        return None
    # The deterministic head of the worker pipeline's train transform (transforms.classification.train_transform).
    train_fixed = v2.Compose(
        [
            v2.Resize(size, interpolation=interpolation(tf.resize_interpolation), antialias=True),
            v2.CenterCrop(size),
        ]
    )
    splits = {}
    for name, ds in dm.datasets.items():
        images = ds.source.images[torch.as_tensor(ds.indices)]
        images = transformed(images, train_fixed if name == "train" else ds.transform)
        splits[name] = (
            images.contiguous().to(device),
            torch.as_tensor(ds.labels, dtype=torch.long).to(device),
        )
    padding = tf.crop_padding if tf.train_crop == "pad" else 0
    return CachedSplits(
        splits,
        hp.batch_size,
        hp.seed,
        tf.mean,
        tf.std,
        augment=BatchAugment(padding, tf.hflip) if (padding > 0 or tf.hflip > 0) else None,
        sampler=hp.sampler,
    )


def cache_for(dm: Any, build: Any) -> CachedSplits | None:
    """The DataModule's cache for its Trainer's current device: built (or found off) once per device.

    Decided when the first loader is asked for, not in `setup`: code that calls `dm.setup()`
    before handing the DataModule to a Trainer still gets its splits on the Trainer's device.
    """
    device = trainer_device(dm.trainer)
    state = getattr(dm, "_device_cache_state", None)
    if state is None or state[0] != device:
        dm._device_cache_state = (device, build(dm))
    return dm._device_cache_state[1]


def cache_tensors(
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
    mode: Any,
    max_gb: float,
    trainer: Any,
    batch_size: int,
    seed: int,
    where: str,
) -> CachedSplits | None:
    """Cache ready-made (already normalised) tensors, e.g. the digits, with no augmentation."""
    mode = parse_mode(mode)
    if mode == "false":
        return None
    device = trainer_device(trainer)
    if not decide(
        mode, nbytes(*(t for pair in splits.values() for t in pair)), float(max_gb), device, None, where
    ):
        return None
    on_device = {k: (x.to(device), y.to(device)) for k, (x, y) in splits.items()}
    return CachedSplits(on_device, batch_size, seed)
