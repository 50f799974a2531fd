"""data.device_cache: the splits on the Trainer's device (here the CPU, same code), augmented there.

Same images, labels and order as the worker pipeline; crop/flip statistics that match it; DDP
shards as DistributedSampler cuts them; clear errors; `trainer=gpu_fast` refused without a GPU.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import HELPERS_ENV, run_cli, run_folders

from litvision.data.datasets.cifar import CIFAR10DataModule
from litvision.data.datasets.mnist import MNISTDataModule
from litvision.data.fixtures.classification import (
    CIFAR10_CLASSES,
    balanced_labels,
    class_images,
    make_mnist,
    write_cifar10,
)
from litvision.data.pipeline.device_cache import DeviceLoader, decide, shard
from litvision.errors import UserError


def _cifar(root: Path, images=None, per_batch: int = 20, seed: int = 0) -> Path:
    """CIFAR-10 pickles: 5 training batches of `per_batch` images (the given pattern, or class images)."""
    batches = []
    for b in range(5):
        y = balanced_labels(10, per_batch // 10)
        x = class_images(y, 32, 32, 3, seed + b) if images is None else np.repeat(images[None], len(y), 0)
        batches.append((x, y))
    yte = balanced_labels(10, 3)
    write_cifar10(root, batches, (class_images(yte, 32, 32, 3, seed + 9), yte), CIFAR10_CLASSES)
    return root


def _dm(cls, root: Path, cache: str, **kw) -> CIFAR10DataModule:
    kw = {
        "batch_size": 16,
        "num_workers": 0,
        "normalize_on": "worker",
        "image_size": 32,
        "train_crop": "pad",
        **kw,
    }
    dm = cls(root=str(root), device_cache=cache, **kw)
    dm.setup()
    return dm


def _batches(loader) -> list:
    return [(x.clone(), y.clone()) for x, y in loader]


# -- same data as the worker pipeline ---------------------------------------------------------------
@pytest.mark.parametrize(
    "kw",
    [
        {"train_crop": "pad", "crop_padding": 0, "hflip": 0.0},
        # Resized at upload by the workers' own transform; classes drawn by the weighted sampler.
        {"train_crop": "pad", "crop_padding": 0, "hflip": 0.0, "image_size": 40, "sampler": "weighted"},
        {"train_crop": "none", "hflip": 0.0, "image_size": 24, "resize_interpolation": "bicubic"},
    ],
)
def test_cached_batches_equal_the_worker_pipeline(tmp_path: Path, kw: dict) -> None:
    """Train (augmentation that does nothing), val and test batches: same images, labels, order, for
    two epochs. Catches: a wrong index map, a skipped resize, unsorted order, other normalisation."""
    root = _cifar(tmp_path / "c")
    workers, cached = _dm(CIFAR10DataModule, root, "false", **kw), _dm(CIFAR10DataModule, root, "true", **kw)
    for split in ("train", "val", "test"):
        w_loader = getattr(workers, f"{split}_dataloader")()
        c_loader = getattr(cached, f"{split}_dataloader")()
        assert isinstance(c_loader, DeviceLoader) and len(c_loader) == len(w_loader)
        for epoch in (0, 1):
            for loader in (w_loader, c_loader):
                loader.sampler.set_epoch(epoch) if hasattr(loader.sampler, "set_epoch") else None
            w, c = _batches(w_loader), _batches(c_loader)
            assert len(w) == len(c)
            for (wx, wy), (cx, cy) in zip(w, c):
                assert torch.equal(wy, cy)
                assert wx.shape == cx.shape and torch.allclose(wx, cx, atol=1e-6), (split, epoch)


def _variants(img: torch.Tensor, pad: int) -> torch.Tensor:
    """Every padded crop of one uint8 image (C, H, W) and its mirror: (2 * (2 pad + 1)^2, C, H, W)."""
    _, h, w = img.shape
    padded = torch.nn.functional.pad(img, (pad, pad, pad, pad))
    crops = [padded[:, y : y + h, x : x + w] for y in range(2 * pad + 1) for x in range(2 * pad + 1)]
    crops = torch.stack(crops)
    return torch.cat([crops, crops.flip(-1)])


def test_each_training_image_once_per_epoch_with_its_label(tmp_path: Path) -> None:
    """Pad-crop and flip on: each epoch reads a permutation of the split (a new one each epoch), and
    the k-th image yielded is a padded crop (maybe mirrored) of the k-th index, with that label.
    Catches: indices drawn with replacement, a label from another row, a crop outside 0..2*pad."""
    root = _cifar(tmp_path / "c", per_batch=20)
    dm = _dm(CIFAR10DataModule, root, "true", train_crop="pad", crop_padding=4, hflip=0.5, batch_size=32)
    train = dm.datasets["train"]
    src = train.source.images[torch.as_tensor(train.indices)]
    mean, std = torch.tensor(dm.mean).view(1, -1, 1, 1), torch.tensor(dm.std).view(1, -1, 1, 1)
    loader = dm.train_dataloader()
    orders = []
    for epoch in (0, 1):
        loader.sampler.set_epoch(epoch)
        order = loader.sampler.indices().tolist()
        assert sorted(order) == list(range(len(train)))
        images = torch.cat([x for x, _ in loader])
        labels = torch.cat([y for _, y in loader])
        assert labels.tolist() == train.labels[order].tolist()
        u8 = (images * std + mean).mul(255).round().to(torch.uint8)
        for img, i in zip(u8, order):
            assert (_variants(src[i], 4) == img).flatten(1).all(1).any(), i
        orders.append(order)
    assert orders[0] != orders[1]


# -- crop/flip statistics -------------------------------------------------------------------------
def _position_coded() -> np.ndarray:
    """(32, 32, 3) uint8: red = 8*row + 3, green = 8*col + 3, so any pixel tells where it came from."""
    rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    return np.stack([8 * rows + 3, 8 * cols + 3, np.full_like(rows, 128)], -1).astype(np.uint8)


def _offsets(u8: torch.Tensor, pad: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dy, dx, flipped) of padded crops of the position-coded image, read off pixels 16 and 17."""
    u8 = u8.long()
    src_row = (u8[:, 0, 16, 16] - 3) // 8
    c16, c17 = (u8[:, 1, 16, 16] - 3) // 8, (u8[:, 1, 16, 17] - 3) // 8
    flipped = c17 < c16
    dy = src_row - 16 + pad
    dx = torch.where(flipped, c16 - 15 + pad, c16 - 16 + pad)
    return dy.numpy(), dx.numpy(), flipped.numpy()


def test_crop_and_flip_statistics_match_the_worker_pipeline(tmp_path: Path) -> None:
    """3,000 augmented images each way: offsets uniform over 0..2*pad in both axes and flips at the
    configured rate, for the workers' torchvision transforms and for the device batches alike.
    Catches: offsets in 0..pad only, dy used for dx too, flip probability ignored or inverted."""
    pad, hflip, n = 4, 0.3, 3000
    root = _cifar(tmp_path / "c", images=_position_coded(), per_batch=100)
    kw = {"train_crop": "pad", "crop_padding": pad, "hflip": hflip, "batch_size": 250}
    workers, cached = _dm(CIFAR10DataModule, root, "false", **kw), _dm(CIFAR10DataModule, root, "true", **kw)
    torch.manual_seed(0)
    ds = workers.datasets["train"]
    w = torch.stack([ds[i % len(ds)][0] for i in range(n)])
    loader, chunks, epoch = cached.train_dataloader(), [], 0
    mean, std = torch.tensor(cached.mean).view(1, -1, 1, 1), torch.tensor(cached.std).view(1, -1, 1, 1)
    while sum(len(c) for c in chunks) < n:
        loader.sampler.set_epoch(epoch)
        chunks += [(x * std + mean).mul(255).round().to(torch.uint8) for x, _ in loader]
        epoch += 1
    c = torch.cat(chunks)[:n]
    bins = 2 * pad + 1
    for images in (w, c):
        dy, dx, flipped = _offsets(images, pad)
        for d in (dy, dx):
            freq = np.bincount(d, minlength=bins) / n
            assert len(freq) == bins and np.abs(freq - 1 / bins).max() < 0.03, freq
        assert abs(flipped.mean() - hflip) < 0.04
        # The two axes are drawn independently: dy says nothing about dx.
        assert abs(np.corrcoef(dy, dx)[0, 1]) < 0.08
    wy, wx, wf = _offsets(w, pad)
    cy, cx, cf = _offsets(c, pad)
    hist = lambda a: np.bincount(a, minlength=bins) / n  # noqa: E731
    assert np.abs(hist(wy) - hist(cy)).sum() / 2 < 0.06 and np.abs(hist(wx) - hist(cx)).sum() / 2 < 0.06
    assert abs(wf.mean() - cf.mean()) < 0.05


# -- DDP ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, world", [(10, 2), (11, 2), (7, 3), (2, 4)])
def test_shards_are_distributed_samplers_shards(n: int, world: int) -> None:
    """Each rank's part of a permutation equals DistributedSampler's (drop_last=False) for that rank.
    Catches: contiguous blocks instead of strided ranks, missing or wrong padding."""
    from torch.utils.data import DistributedSampler

    order = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    for rank in range(world):
        ref = DistributedSampler(order.tolist(), num_replicas=world, rank=rank, shuffle=False)
        assert shard(order, rank, world).tolist() == [int(order[i]) for i in ref]


@pytest.mark.slow
def test_two_process_ddp_shards_are_disjoint_and_cover_the_split(runs_dir: Path) -> None:
    """Real DDP (2 gloo processes) through the CLI with the digits cached: each rank reads half of
    each epoch, the halves are disjoint and together the whole split, and the step count halves.
    Catches: every rank reading the whole split, ranks seeded differently (overlapping shards)."""
    shards = runs_dir / "shards"
    proc = run_cli(
        "litvision.train",
        "experiment=digits_cnn",
        "trainer=ddp_cpu",
        "trainer.max_epochs=2",
        "data.device_cache=true",
        "data.batch_size=64",
        "test=false",
        "callbacks.rich_progress_bar=null",
        "callbacks.model_summary=null",
        "+callbacks.shards._target_=device_cache_helpers.RecordShards",
        f"+callbacks.shards.out_dir={shards}",
        f"paths.runs_dir={runs_dir}",
        env=HELPERS_ENV,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = run_folders(runs_dir)
    summary = json.loads((run / "summary.json").read_text())
    from sklearn.datasets import load_digits

    from litvision.data.pipeline.splits import stratified_split

    y = load_digits(return_X_y=True)[1]
    n = len(stratified_split(y, (0.15, 0.2), 42)[0])
    per_rank = -(-n // 2)
    assert summary["global_step"] == 2 * -(-per_rank // 64)
    for epoch in (0, 1):
        parts = [json.loads((shards / f"rank{r}_epoch{epoch}.json").read_text()) for r in (0, 1)]
        assert all(p["loader"] == "DeviceLoader" and p["batches"] == -(-per_rank // 64) for p in parts)
        a, b = (p["indices"] for p in parts)
        assert len(a) == len(b) == per_rank
        assert len(set(a) & set(b)) == 2 * per_rank - n  # only DistributedSampler's padding repeats
        assert set(a) | set(b) == set(range(n))
    e0 = json.loads((shards / "rank0_epoch0.json").read_text())["indices"]
    e1 = json.loads((shards / "rank0_epoch1.json").read_text())["indices"]
    assert e0 != e1


# -- bad input --------------------------------------------------------------------------------------
def test_cache_over_budget_is_one_line_naming_size_and_budget(tmp_path: Path) -> None:
    """`true` over data.device_cache_max_gb: a UserError naming both numbers and the fix.
    Catches: the budget check skipped, or a message without the size and the key."""
    root = _cifar(tmp_path / "c")
    dm = _dm(CIFAR10DataModule, root, "true", device_cache_max_gb=0.0001)
    with pytest.raises(UserError) as e:
        dm.train_dataloader()
    msg = str(e.value)
    assert (
        "\n" not in msg and "take 0.0004 GB" in msg and "device_cache_max_gb=0.0001" in msg and "false" in msg
    )
    # Augmentations that only run per image are refused under `true` too.
    dm = _dm(CIFAR10DataModule, root, "true", augment="randaugment")
    with pytest.raises(UserError, match=r"data.augment=randaugment .* data.device_cache=false"):
        dm.train_dataloader()
    with pytest.raises(UserError, match="data.device_cache='sometimes' is not one of auto, true, false"):
        CIFAR10DataModule(root=str(root), device_cache="sometimes")


def test_auto_falls_back_with_one_info_line(tmp_path: Path, caplog) -> None:
    """`auto` on an accelerator: cache when it fits, else the worker pipeline and one info line
    saying why; on the CPU it stays off. (No GPU here: the decision is asked for a cuda device.)
    Catches: auto raising instead of falling back, or caching on the CPU."""
    gpu = torch.device("cuda", 0)
    with caplog.at_level(logging.INFO, logger="litvision.data.pipeline.device_cache"):
        assert decide("auto", 10**6, 1.0, gpu) is True
        assert decide("auto", 5 * 10**9, 4.0, gpu, where="the CIFAR10DataModule splits") is False
        assert (
            decide("auto", 10**6, 1.0, gpu, unsupported="data.augment=randaugment (a per-image policy)")
            is False
        )
    lines = [r.getMessage() for r in caplog.records]
    assert any("take 5 GB, over data.device_cache_max_gb=4" in m and "worker pipeline" in m for m in lines)
    assert any("randaugment" in m and "worker pipeline" in m for m in lines)
    assert decide("auto", 10, 1.0, torch.device("cpu")) is False
    # On the CPU (this machine's Trainer device) auto keeps the DataLoader.
    root = _cifar(tmp_path / "c")
    assert not isinstance(_dm(CIFAR10DataModule, root, "auto").train_dataloader(), DeviceLoader)


def test_mnist_is_cached_too(tmp_path: Path) -> None:
    """MNIST (one channel, idx files) through the same cache: batches equal the worker pipeline's.
    Catches: a channel count or mean/std shape that only fits RGB."""
    root = make_mnist(tmp_path)[0].split("=", 1)[1]
    kw = {"image_size": 28, "train_crop": "none", "hflip": 0.0}
    w, c = _dm(MNISTDataModule, root, "false", **kw), _dm(MNISTDataModule, root, "true", **kw)
    for split in ("train", "val", "test"):
        wl, cl = getattr(w, f"{split}_dataloader")(), getattr(c, f"{split}_dataloader")()
        assert isinstance(cl, DeviceLoader)
        for (wx, wy), (cx, cy) in zip(wl, cl, strict=True):
            assert torch.equal(wy, cy) and torch.allclose(wx, cx, atol=1e-6)


def test_gpu_fast_without_a_gpu_is_one_line_and_no_run_folder(runs_dir: Path) -> None:
    """`trainer=gpu_fast` asks for a GPU, so the CLI refuses it before Hydra makes a folder.
    Catches: a preset that leaves accelerator=auto (would silently train on the CPU)."""
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = run_cli(
        "litvision.train",
        "experiment=digits_cnn",
        "trainer=gpu_fast",
        f"paths.runs_dir={runs_dir}",
        timeout=300,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no CUDA GPU" in lines[0], proc.stderr
    assert run_folders(runs_dir) == []


def test_crops_are_new_each_epoch_and_the_same_when_an_epoch_is_replayed(tmp_path: Path) -> None:
    """The crop/flip generator is seeded by (seed, epoch, rank): every epoch draws new crops, and an
    epoch read again (a resumed run) draws the same ones. With one image repeated, the k-th image
    yielded tells the k-th draw. Catches: the generator ignoring the epoch (the same crops every
    epoch), and the augmentation drawing from the global RNG instead (an epoch replayed differs)."""
    pad = 4
    root = _cifar(tmp_path / "c", images=_position_coded(), per_batch=20)
    dm = _dm(CIFAR10DataModule, root, "true", train_crop="pad", crop_padding=pad, hflip=0.5, batch_size=32)
    loader = dm.train_dataloader()
    mean, std = torch.tensor(dm.mean).view(1, -1, 1, 1), torch.tensor(dm.std).view(1, -1, 1, 1)

    def draws(epoch: int) -> np.ndarray:
        loader.sampler.set_epoch(epoch)
        u8 = torch.cat([(x * std + mean).mul(255).round().to(torch.uint8) for x, _ in loader])
        return np.stack(_offsets(u8, pad), 1)  # (N, 3): dy, dx, flipped

    e0, e1 = draws(0), draws(1)
    torch.manual_seed(123)  # a global draw between the two reads of epoch 0
    torch.rand(5)
    assert np.array_equal(draws(0), e0), "epoch 0 read again draws other crops"
    same = (e0 == e1).all(1).mean()
    assert same < 0.25, f"{same:.0%} of epoch 1's crops repeat epoch 0's"
