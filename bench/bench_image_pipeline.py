"""Decoded + augmented training images per second: litvision's image-folder pipeline vs the classic one.

    python -m bench image_pipeline          # -> bench/results/image_pipeline.json

Both read the same 200 JPEGs of 500x375 (written to a temporary folder) and produce
normalised 224x224 float batches through a DataLoader with the same batch size and
workers:
- classic: PIL open -> transforms.RandomResizedCrop(224) -> RandomHorizontalFlip -> ToTensor -> Normalize
- litvision: ImageFolderDataModule's train loader as `normalize_on=auto` sets it up without a GPU
  (torchvision.io decode to uint8, v2 crop/resize/flip on uint8, uint8 collation, then ToDtype(float32)
  + Normalize on the whole batch in the worker)
- litvision_device_mode_on_cpu: `normalize_on=device`: uint8 batches from the workers, normalised by the
  main process (what `on_after_batch_transfer` does on a GPU; on a CPU it competes with training)
Each is run for one warm-up epoch, then timed over `epochs` epochs. The CPU milliseconds per image of
each pipeline's worker work (samples + collation, one process, one thread) are reported too: unlike
wall-clock rates they hold up when other processes share the CPU.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

NUM_IMAGES = 200
SIZE = (375, 500)  # height, width
BATCH_SIZE = 32
NUM_WORKERS = min(2, os.cpu_count() or 1)
EPOCHS = 3
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def write_photos(root: Path, n: int = NUM_IMAGES, classes: int = 5) -> list[tuple[Path, int]]:
    """Photo-like JPEGs (smooth gradients, shapes and sensor-like noise) at quality 90."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    h, w = SIZE
    yy, xx = np.mgrid[0:h, 0:w]
    items = []
    for i in range(n):
        label = i % classes
        base = np.stack(
            [(xx * rng.uniform(0.2, 0.6) + yy * rng.uniform(0.1, 0.5)) % 256 for _ in range(3)], -1
        )
        img = Image.fromarray((base + rng.normal(0, 8, base.shape)).clip(0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(6):
            x0, y0 = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60))
            fill = tuple(int(c) for c in rng.integers(0, 256, 3))
            draw.ellipse(
                (x0, y0, x0 + int(rng.integers(20, 160)), y0 + int(rng.integers(20, 160))), fill=fill
            )
        path = root / f"class_{label}" / f"img_{i:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path, quality=90)
        items.append((path, label))
    return items


class ClassicDataset:
    """The pipeline of countless tutorials: PIL image in, torchvision.transforms (v1) out."""

    def __init__(self, items: list[tuple[Path, int]]) -> None:
        from torchvision import transforms as T

        self.items = items
        self.transform = T.Compose(
            [
                T.RandomResizedCrop(224),
                T.RandomHorizontalFlip(),
                T.ToTensor(),
                T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            ]
        )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        from PIL import Image

        path, label = self.items[i]
        with Image.open(path) as im:
            img = im.convert("RGB")
        return self.transform(img), label


def images_per_second(loader, batch_fn=None, epochs: int = EPOCHS) -> float:
    for _ in loader:  # warm-up: worker start, page cache
        pass
    n = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for x, _ in loader:
            if batch_fn is not None:
                x = batch_fn(x)
            assert x.dtype.is_floating_point and x.shape[-2:] == (224, 224)
            n += len(x)
    return n / (time.perf_counter() - start)


def cpu_ms_per_image(dataset, collate, repeats: int = 3) -> float:
    """What a loader worker spends per image (samples, then collation), best of `repeats`, in CPU time."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker
    n = len(dataset)
    try:
        collate([dataset[i] for i in range(min(BATCH_SIZE, n))])
        best = float("inf")
        for _ in range(repeats):
            start = time.process_time()
            for b in range(0, n, BATCH_SIZE):
                collate([dataset[i] for i in range(b, min(n, b + BATCH_SIZE))])
            best = min(best, (time.process_time() - start) / n * 1000)
        return best
    finally:
        torch.set_num_threads(threads)


def run() -> dict:
    import torch
    from torch.utils.data import DataLoader, default_collate

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        write_photos(Path(tmp))
        dm = _datamodule(tmp, "auto")
        dm_device = _datamodule(tmp, "device")
        train = dm.datasets["train"]
        # The classic loader reads exactly the DataModule's training images.
        items = [(train.source.paths[i], int(train.source.labels[i])) for i in train.indices]
        classic_ds = ClassicDataset(items)
        classic = DataLoader(
            classic_ds,
            batch_size=BATCH_SIZE,
            shuffle=True,
            num_workers=NUM_WORKERS,
            persistent_workers=NUM_WORKERS > 0,
        )
        ours, ours_device = dm.train_dataloader(), dm_device.train_dataloader()
        rates: dict[str, list[float]] = {"classic": [], "litvision": [], "litvision_device_mode_on_cpu": []}
        # Alternate the pipelines over rounds so that neither gains from running later (warm caches, load).
        for _ in range(2):
            rates["classic"].append(images_per_second(classic))
            rates["litvision"].append(images_per_second(ours))
            rates["litvision_device_mode_on_cpu"].append(images_per_second(ours_device, dm_device.normalize))
        cpu_ms = {
            "classic": cpu_ms_per_image(classic_ds, default_collate),
            "litvision": cpu_ms_per_image(train, ours.collate_fn),
        }
        n_train = len(train)
    best = {k: max(v) for k, v in rates.items()}
    return {
        "images_written": NUM_IMAGES,
        "train_images_per_epoch": n_train,
        "image_size_in": list(SIZE),
        "batch_size": BATCH_SIZE,
        "num_workers": NUM_WORKERS,
        "images_per_s": {k: round(v, 1) for k, v in best.items()},
        "speedup": round(best["litvision"] / best["classic"], 2),
        "speedup_device_mode_on_cpu": round(best["litvision_device_mode_on_cpu"] / best["classic"], 2),
        "cpu_ms_per_image": {k: round(v, 3) for k, v in cpu_ms.items()},
        "cpu_speedup_per_image": round(cpu_ms["classic"] / cpu_ms["litvision"], 2),
        "load_average_1min": round(os.getloadavg()[0], 1),
        "target_speedup": 1.5,
    }


def _datamodule(root: str, normalize_on: str):
    from litvision.data.datasets.image_folder import ImageFolderDataModule

    dm = ImageFolderDataModule(
        root=root,
        batch_size=BATCH_SIZE,
        num_workers=NUM_WORKERS,
        image_size=224,
        resize_size=256,
        val_fraction=0.2,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        normalize_on=normalize_on,
    )
    dm.setup("fit")
    return dm
