"""The detection sample contract shared by every detection reader, DataModule and task.

A dataset item is `(image, target)`:

- `image`: `tv_tensors.Image`, uint8 [3, H, W] from a reader; float32 in [0, 1] after the
  DataModule's transforms (not normalised: the models normalise internally).
- `target`: a dict with
  `boxes` `tv_tensors.BoundingBoxes` XYXY, absolute 0-based continuous pixel coordinates, float32,
  canvas_size=(H, W);
  `labels` int64 [N], contiguous 0..C-1 (no background class; torchvision wrappers add 1);
  `iscrowd` int64 [N], 1 for objects evaluation must ignore (COCO crowd regions, VOC `difficult`);
  `area` float32 [N] (the object's area: the annotation's own from a reader that has it, e.g.
  COCO's mask area, else the box's; transforms scale it with its box);
  `image_id` int (COCO's image id for COCO data, the index in the split otherwise).

`detection_collate` gives torchvision detectors their input (lists); `padded_collate` gives
models that want one batch tensor the images padded to the largest H and W with a padding mask.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset
from torchvision import tv_tensors

from litvision.data.pipeline.samplers import EpochShuffleSampler, seeded_generator
from litvision.errors import UserError


@dataclass
class BoxStats:
    """Counts of boxes a reader had to repair, reported once per dataset as one warning."""

    clipped: int = 0
    dropped: int = 0
    files: list[str] = field(default_factory=list)

    def warn(self, where: str | Path) -> None:
        if self.clipped or self.dropped:
            example = f" (e.g. {self.files[0]})" if self.files else ""
            warnings.warn(
                f"{where}: {self.clipped} box(es) reaching outside the image were clipped to it and "
                f"{self.dropped} box(es) with zero area were dropped{example}.",
                stacklevel=3,
            )


def clean_boxes(
    boxes: torch.Tensor, height: int, width: int, stats: BoxStats, source: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip XYXY boxes to the image and find the ones left with zero area.

    Returns the clipped boxes and a bool mask of the boxes to keep; `stats` counts both repairs.
    """
    if boxes.numel() == 0:
        return boxes.reshape(0, 4), torch.zeros(0, dtype=torch.bool)
    # numpy: a tenth of torch's per-call overhead on these tiny arrays, which add up over 100k images.
    raw = boxes.numpy()
    clipped, moved, keep = clip_boxes_np(raw, np.float32(width), np.float32(height))
    n_dropped = int((~keep).sum())
    n_clipped = int((moved & keep).sum())
    if n_clipped or n_dropped:
        stats.clipped += n_clipped
        stats.dropped += n_dropped
        if len(stats.files) < 3:
            stats.files.append(source)
    return torch.from_numpy(clipped), torch.from_numpy(keep)


def clip_boxes_np(boxes: np.ndarray, width: Any, height: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clipped boxes, moved by more than round-off, non-empty) for XYXY boxes [N, 4].

    `width`/`height` are scalars or per-box arrays. Overshoots below a thousandth of a pixel are
    float round-off (e.g. from normalised YOLO coordinates): clipped, not counted as moved.
    """
    width, height = np.asarray(width, dtype=np.float32), np.asarray(height, dtype=np.float32)
    clipped = np.empty_like(boxes, dtype=np.float32)
    np.clip(boxes[:, 0], 0, width, out=clipped[:, 0])
    np.clip(boxes[:, 2], 0, width, out=clipped[:, 2])
    np.clip(boxes[:, 1], 0, height, out=clipped[:, 1])
    np.clip(boxes[:, 3], 0, height, out=clipped[:, 3])
    moved = (np.abs(clipped - boxes) > 1e-3).any(axis=1)
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    return clipped, moved, keep


def make_target(
    boxes: torch.Tensor | Sequence[Sequence[float]],
    labels: torch.Tensor | Sequence[int],
    canvas_size: tuple[int, int],
    image_id: int,
    iscrowd: torch.Tensor | Sequence[int] | None = None,
    area: torch.Tensor | Sequence[float] | None = None,
) -> dict[str, Any]:
    """A target dict in the contract's types from plain XYXY boxes and labels."""
    boxes_t = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    n = boxes_t.shape[0]
    labels_t = torch.as_tensor(labels, dtype=torch.int64).reshape(n)
    iscrowd_t = (
        torch.zeros(n, dtype=torch.int64)
        if iscrowd is None
        else torch.as_tensor(iscrowd, dtype=torch.int64).reshape(n)
    )
    area_t = box_area(boxes_t) if area is None else torch.as_tensor(area, dtype=torch.float32).reshape(n)
    return {
        "boxes": tv_tensors.BoundingBoxes(boxes_t, format="XYXY", canvas_size=tuple(canvas_size)),
        "labels": labels_t,
        "iscrowd": iscrowd_t,
        "area": area_t,
        "image_id": int(image_id),
    }


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    boxes = boxes.reshape(-1, 4).float()
    return ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).to(torch.float32)


def read_image(path: str | Path) -> tv_tensors.Image:
    """Decode an image file to uint8 RGB [3, H, W] with the classification reader (16 bits scaled, an
    animation's first frame), in its stored orientation: the boxes were drawn on those pixels."""
    from litvision.data.pipeline.decode import UnreadableImage, read_rgb

    try:
        return tv_tensors.Image(read_rgb(path, exif=False))
    except UnreadableImage as err:
        raise UserError(
            f"Cannot read the image {path} ({err.reason}); replace the file or remove it from the split."
        ) from None


def detection_collate(batch: Sequence[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """Lists of images and targets: what torchvision's detectors take."""
    images, targets = zip(*batch, strict=True) if batch else ((), ())
    return list(images), list(targets)


def pad_images(images: Sequence[torch.Tensor], size_divisor: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad [C, H, W] images (bottom/right, zeros) to the batch's largest H and W.

    Returns `images [B, C, Hmax, Wmax]` and `mask [B, Hmax, Wmax]` bool, True where there is padding.
    Padding only at the bottom/right keeps every box's pixel coordinates valid.
    """
    if not images:
        raise ValueError("pad_images needs at least one image")
    c = images[0].shape[0]
    h = max(int(im.shape[-2]) for im in images)
    w = max(int(im.shape[-1]) for im in images)
    if size_divisor > 1:
        h = -(-h // size_divisor) * size_divisor
        w = -(-w // size_divisor) * size_divisor
    out = images[0].new_zeros((len(images), c, h, w))
    mask = torch.ones((len(images), h, w), dtype=torch.bool)
    for i, im in enumerate(images):
        out[i, :, : im.shape[-2], : im.shape[-1]] = im
        mask[i, : im.shape[-2], : im.shape[-1]] = False
    return out, mask


def padded_collate(
    batch: Sequence[tuple[torch.Tensor, dict]], size_divisor: int = 1
) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    """`(images [B,3,Hmax,Wmax], mask [B,Hmax,Wmax] True=padding, targets)`."""
    images, targets = detection_collate(batch)
    padded, mask = pad_images([im.as_subclass(torch.Tensor) for im in images], size_divisor)
    return padded, mask, targets


class TransformedDataset(Dataset):
    """Applies a v2 transform to `(image, target)` pairs; `area` follows its box.

    A reader's `area` may differ from its box's (COCO's is the mask's), and COCO's size buckets
    in mAP read it. The transform carries each object's area-to-box ratio (filtered with the
    boxes by SanitizeBoundingBoxes) and the area is that ratio times the transformed box's area:
    exact under resizes and flips, the object's fill of its box under crops.
    """

    def __init__(self, dataset: Dataset, transform: Callable | None) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        image, target = self.dataset[index]
        if self.transform is not None:
            before = box_area(target["boxes"])
            if "area" in target:
                target["area"] = torch.as_tensor(target["area"], dtype=torch.float32) / before.clamp_min(1e-6)
            else:
                target["area"] = torch.ones_like(before)
            image, target = self.transform(image, target)
            target["area"] = target["area"] * box_area(target["boxes"])
        return image, target


class DetectionDataModule(L.LightningDataModule):
    """Loaders, transforms and class bookkeeping common to every detection DataModule.

    Subclasses implement `_build(split_name) -> Dataset` for "train", "val" and "test" and set
    `class_names` in their constructor.
    """

    class_names: list[str]

    def __init__(
        self,
        root: str | Path,
        num_classes: int | None = None,
        batch_size: int = 2,
        num_workers: int = 0,
        image_size: Any = 512,
        augment: dict | None = None,
        seed: int = 42,
        collate: str = "list",
    ) -> None:
        super().__init__()
        # Collects the subclass's init arguments too: checkpoints record the data settings.
        self.save_hyperparameters()
        self.root = Path(root).expanduser()
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.image_size = image_size
        self.augment = dict(augment or {})
        self.seed = seed
        if collate not in ("list", "padded"):
            raise UserError(f"data.collate={collate!r} is not one of 'list', 'padded'.")
        self.collate = collate
        self._expected_classes = num_classes
        self.datasets: dict[str, Dataset] = {}

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def category_ids(self) -> list[int]:
        """Contiguous label -> the category id results files (`detections.json`) carry.

        VOC XML names its classes and YOLO txt numbers them 0..C-1, so neither has ids of its own
        for COCO tools: they get 1..C in class order, the ids this project's converters
        (`convert yolo2coco`) and the shapes' COCO files give the same classes (ultralytics writes
        1..C for non-COCO data too). COCO data overrides this with the file's own ids.
        """
        return list(range(1, self.num_classes + 1))

    def _check_num_classes(self) -> None:
        if self._expected_classes is not None and self._expected_classes != len(self.class_names):
            raise UserError(
                f"data.num_classes={self._expected_classes} but {self.root} has {len(self.class_names)} "
                f"classes ({', '.join(self.class_names[:6])}{', ...' if len(self.class_names) > 6 else ''}); "
                f"set data.num_classes={len(self.class_names)}."
            )

    def _build(self, split: str) -> Dataset:
        raise NotImplementedError

    def transforms(self, train: bool) -> Callable:
        from litvision.data.transforms.detection import detection_transforms

        per_image = {k: v for k, v in self.augment.items() if k not in BATCH_AUGMENTS}
        return detection_transforms(train=train, image_size=self.image_size, **per_image)

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in wanted.get(stage, ("train", "val", "test")) if stage else ("train", "val", "test"):
            if split not in self.datasets:
                raw = self._build(split)
                if split == "train" and self.augment.get("mosaic"):
                    from litvision.data.transforms.mosaic import MosaicDataset

                    raw = MosaicDataset(raw, _square_side(self.image_size), p=float(self.augment["mosaic"]))
                self.datasets[split] = TransformedDataset(raw, self.transforms(split == "train"))

    def raw_dataset(self, split: str) -> Dataset:
        """The reader for a split, without transforms (uint8 images, the dataset's own sizes)."""
        return self._build(split)

    def _loader(self, split: str, train: bool = False) -> DataLoader:
        if split not in self.datasets:
            self.setup(None)
        ds = self.datasets[split]
        collate: Callable = detection_collate if self.collate == "list" else padded_collate
        sampler: Any = EpochShuffleSampler(ds, self.seed) if train else None
        if train and self.augment.get("multi_scale"):
            from litvision.data.transforms.detection import MultiScaleCollate, multi_scale_sizes

            collate = MultiScaleCollate(multi_scale_sizes(self.augment["multi_scale"]), collate)
        if train and self.augment.get("mosaic"):
            from litvision.data.transforms.mosaic import MosaicSampler

            trainer = getattr(self, "trainer", None)
            sampler = MosaicSampler(
                sampler, trainer.max_epochs if trainer else None, self.augment.get("mosaic_off_epochs", 0)
            )
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate,
            generator=seeded_generator(self.seed),
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")


# Options of `augment` the DataModule applies itself (to batches, or to the reader before the
# per-image transforms); the others go to `detection_transforms`.
BATCH_AUGMENTS = ("multi_scale", "mosaic", "mosaic_off_epochs")


def _square_side(image_size: Any) -> int:
    """The side a mosaic tile is sized to: the square size, or the shortest side of R-CNN sizes."""
    if isinstance(image_size, int):
        return image_size
    if hasattr(image_size, "get") and image_size.get("min_size"):
        return int(image_size["min_size"])
    return int(max(image_size))


def concat(datasets: Sequence[Dataset]) -> Dataset:
    """One dataset, or their concatenation with image ids renumbered to stay unique."""
    if len(datasets) == 1:
        return datasets[0]
    return _RenumberedConcat(list(datasets))


class _RenumberedConcat(ConcatDataset):
    def __getitem__(self, idx: int) -> tuple[torch.Tensor, dict]:
        image, target = super().__getitem__(idx)
        target["image_id"] = idx if idx >= 0 else len(self) + idx
        return image, target


def fetch_archive(url: str, md5: str, download_root: Path, extract_root: Path, what: str) -> None:
    """Download an official archive (checked against its md5) and extract it.

    With no network this fails with what to do instead: the URL and the manual commands.
    """
    from torchvision.datasets.utils import check_integrity, download_and_extract_archive

    filename = url.rsplit("/", 1)[-1]
    archive = download_root / filename
    if archive.is_file() and not check_integrity(str(archive), md5):
        raise UserError(
            f"{archive} does not match the md5 {md5} of the official {what} archive; delete it and download again."
        )
    unpack = f"tar -xf {archive} -C" if filename.endswith(".tar") else f"unzip -q {archive} -d"
    try:
        download_and_extract_archive(
            url, download_root=str(download_root), extract_root=str(extract_root), filename=filename, md5=md5
        )
    except (OSError, RuntimeError) as err:  # URLError is an OSError
        raise UserError(
            f"Could not download {what} from {url} ({err.__class__.__name__}: {err}). Without network, fetch it "
            f"elsewhere and unpack it yourself: `wget {url} -P {download_root} && {unpack} {extract_root}` "
            f"(md5 {md5})."
        ) from err


def draw_target(
    image: torch.Tensor, target: dict, class_names: Sequence[str], scores: torch.Tensor | None = None
) -> torch.Tensor:
    """The image (uint8 or float [0, 1]) with its boxes and class names drawn, as uint8 [3, H, W].

    Objects evaluation ignores (`iscrowd=1`: crowd, VOC difficult) are drawn grey, the others red;
    `scores` (predictions) are appended to the names.
    """
    from torchvision.utils import draw_bounding_boxes

    img = image.as_subclass(torch.Tensor)
    if img.is_floating_point():
        img = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    boxes = target["boxes"].as_subclass(torch.Tensor).reshape(-1, 4)
    labels = target["labels"].tolist()
    names = [class_names[i] if 0 <= i < len(class_names) else str(i) for i in labels]
    if scores is not None:
        names = [f"{n} {s:.2f}" for n, s in zip(names, scores.tolist(), strict=True)]
    crowd = target.get("iscrowd", torch.zeros(len(labels), dtype=torch.int64)).tolist()
    colors = ["grey" if c else "red" for c in crowd]
    if len(boxes) == 0:
        return img.clone()
    return draw_bounding_boxes(img, boxes, names, colors=colors, width=1)
