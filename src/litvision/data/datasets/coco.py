"""COCO detection: `annotations/instances_<split>.json` plus an image folder per split, via pycocotools.

Layout (COCO 2017 as its zips unpack)::

    <root>/annotations/instances_train2017.json   <root>/train2017/000000000009.jpg
    <root>/annotations/instances_val2017.json     <root>/val2017/000000000139.jpg

COCO boxes are `x y w h` from the top-left corner in 0-based continuous pixels, so XYXY is
`(x, y, x + w, y + h)`. Category ids (1..90 with gaps for COCO 2017's 80 classes) map to
contiguous labels 0..C-1 in increasing id order; `category_ids[label]` maps back, for writing
results JSON in COCO's own ids. `image_id` is COCO's image id.

Crowd annotations (`iscrowd=1`, and `ignore=1` where a file has it) are never trained on: the
train split drops them, val/test keep them flagged `iscrowd=1` for the evaluation to ignore.
Images with no annotations are dropped from the train split unless `keep_empty_train=true`
(torchvision's references drop them too) and always kept for evaluation.

    python -m litvision.train experiment=fasterrcnn_coco data.root=/data/coco
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from litvision.data.datasets.registry import register_dataset
from litvision.data.detection import (
    BoxStats,
    DetectionDataModule,
    clip_boxes_np,
    fetch_archive,
    make_target,
    read_image,
)
from litvision.errors import UserError

COCO_ARCHIVES: dict[str, tuple[str, str]] = {
    "train2017": ("http://images.cocodataset.org/zips/train2017.zip", "cced6f7f71b7629ddf16f17bbcfab6b2"),
    "val2017": ("http://images.cocodataset.org/zips/val2017.zip", "442b8da7639aecaf257c1dceb8ba8c80"),
    "annotations": (
        "http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
        "f4bbac642086de4f52a3fdda2de5fa2c",
    ),
}


# COCO 2017's 80 categories by their ids (1..90 with gaps), as in the official annotations.
COCO_2017_CATEGORIES: dict[int, str] = {
    1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 5: "airplane", 6: "bus",
    7: "train", 8: "truck", 9: "boat", 10: "traffic light", 11: "fire hydrant", 13: "stop sign",
    14: "parking meter", 15: "bench", 16: "bird", 17: "cat", 18: "dog", 19: "horse",
    20: "sheep", 21: "cow", 22: "elephant", 23: "bear", 24: "zebra", 25: "giraffe",
    27: "backpack", 28: "umbrella", 31: "handbag", 32: "tie", 33: "suitcase", 34: "frisbee",
    35: "skis", 36: "snowboard", 37: "sports ball", 38: "kite", 39: "baseball bat", 40: "baseball glove",
    41: "skateboard", 42: "surfboard", 43: "tennis racket", 44: "bottle", 46: "wine glass", 47: "cup",
    48: "fork", 49: "knife", 50: "spoon", 51: "bowl", 52: "banana", 53: "apple",
    54: "sandwich", 55: "orange", 56: "broccoli", 57: "carrot", 58: "hot dog", 59: "pizza",
    60: "donut", 61: "cake", 62: "chair", 63: "couch", 64: "potted plant", 65: "bed",
    67: "dining table", 70: "toilet", 72: "tv", 73: "laptop", 74: "mouse", 75: "remote",
    76: "keyboard", 77: "cell phone", 78: "microwave", 79: "oven", 80: "toaster", 81: "sink",
    82: "refrigerator", 84: "book", 85: "clock", 86: "vase", 87: "scissors", 88: "teddy bear",
    89: "hair drier", 90: "toothbrush",
}  # fmt: skip


def load_coco_json(ann_file: Path) -> dict:
    """Read and check a COCO instances file: the keys exist, every annotation's image exists."""
    try:
        with open(ann_file) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise UserError(
            f"No COCO annotation file {ann_file}; point data.root at the folder holding annotations/ "
            "or set data.download=true."
        ) from None
    except json.JSONDecodeError as err:
        raise UserError(
            f"{ann_file} is not valid JSON ({err}); re-extract or fix the annotation file."
        ) from None
    if not isinstance(data, dict):
        raise UserError(f"{ann_file} must hold a JSON object with images, annotations and categories.")
    missing = [k for k in ("images", "annotations", "categories") if k not in data]
    if missing:
        raise UserError(
            f"{ann_file} has no {' or '.join(repr(k) for k in missing)} list; a COCO instances file needs "
            "'images', 'annotations' and 'categories'."
        )
    for img in data["images"]:
        if not (isinstance(img, dict) and "id" in img and img.get("file_name")):
            shown = json.dumps(img)[:120]
            raise UserError(
                f"{ann_file}: the image entry {shown} has no 'id' or 'file_name'; "
                "every entry of 'images' needs both."
            )
    image_ids = {img["id"] for img in data["images"]}
    category_ids = {c["id"] for c in data["categories"]}
    for ann in data["annotations"]:
        if ann.get("image_id") not in image_ids:
            raise UserError(
                f"{ann_file}: annotation {ann.get('id')} points at image_id {ann.get('image_id')}, which is not in "
                "'images'; add the image entry or remove the annotation."
            )
        if ann.get("category_id") not in category_ids:
            raise UserError(
                f"{ann_file}: annotation {ann.get('id')} has category_id {ann.get('category_id')}, which is not in "
                "'categories'; add the category or remove the annotation."
            )
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4):
            raise UserError(
                f"{ann_file}: annotation {ann.get('id')} has bbox {bbox!r}; COCO needs [x, y, w, h]."
            )
    return data


def categories_of(ann_file: Path) -> tuple[list[int], list[str]]:
    """(category ids in increasing order, their names): label i is category_ids[i]."""
    data = load_coco_json(ann_file)
    cats = sorted(data["categories"], key=lambda c: c["id"])
    return [int(c["id"]) for c in cats], [str(c["name"]) for c in cats]


class COCODetection(Dataset):
    """One COCO split read with pycocotools, boxes checked and converted up front.

    Boxes live in a few flat numpy arrays indexed by per-image offsets rather than one tensor
    per image: COCO train (118k images, 860k boxes) indexes in seconds, and DataLoader workers
    do not copy hundreds of thousands of small Python objects.
    """

    def __init__(
        self,
        image_dir: str | Path,
        ann_file: str | Path,
        category_ids: Sequence[int] | None = None,
        keep_crowd: bool = True,
        keep_empty: bool = True,
    ) -> None:
        from pycocotools.coco import COCO

        self.image_dir, self.ann_file = Path(image_dir), Path(ann_file)
        data = load_coco_json(self.ann_file)
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            self.coco = COCO()
            self.coco.dataset = data
            self.coco.createIndex()
        cats = sorted(data["categories"], key=lambda c: c["id"])
        self.category_ids = (
            [int(c) for c in category_ids] if category_ids is not None else [c["id"] for c in cats]
        )
        self.class_names = [self.coco.cats[c]["name"] for c in self.category_ids if c in self.coco.cats]
        cat_to_label = {c: i for i, c in enumerate(self.category_ids)}
        self.keep_crowd = keep_crowd

        image_ids = sorted(self.coco.imgs)
        index_of = {image_id: i for i, image_id in enumerate(image_ids)}
        sizes = np.array([self._size_of(self.coco.imgs[i]) for i in image_ids], dtype=np.int64).reshape(-1, 2)
        anns = [a for a in data["annotations"] if a["category_id"] in cat_to_label]
        owner = np.array([index_of[a["image_id"]] for a in anns], dtype=np.int64)
        xywh = np.array([a["bbox"] for a in anns], dtype=np.float32).reshape(-1, 4)
        labels = np.array([cat_to_label[a["category_id"]] for a in anns], dtype=np.int64)
        crowd = np.array(
            [int(bool(a.get("iscrowd", 0)) or bool(a.get("ignore", 0))) for a in anns], dtype=np.int64
        )
        # x y w h -> x1 y1 x2 y2, then clip to each box's own image.
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        boxes, moved, keep = clip_boxes_np(boxes, sizes[owner, 1], sizes[owner, 0])
        # COCOeval's small/medium/large ranges use the annotation's `area` (the mask's area), not
        # the box's (pycocotools cocoeval.py, evaluateImg: `g['area'] < aRng[0]`); the box area is
        # the fallback for files without it.
        box_areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        given = np.array([float(a.get("area") or 0.0) for a in anns], dtype=np.float32).reshape(-1)
        areas = np.where(given > 0, given, box_areas).astype(np.float32)
        stats = BoxStats(clipped=int((moved & keep).sum()), dropped=int((~keep).sum()))
        stats.files = [f"image {image_ids[i]}" for i in owner[moved | ~keep][:3]]
        stats.warn(self.ann_file)
        if not keep_crowd:
            keep &= crowd == 0
        order = np.argsort(owner[keep], kind="stable")  # annotations grouped by image, file order kept
        self._owner = owner[keep][order]
        self._boxes, self._labels, self._crowd = boxes[keep][order], labels[keep][order], crowd[keep][order]
        self._areas = areas[keep][order]
        counts = np.bincount(self._owner, minlength=len(image_ids))
        self._offsets = np.concatenate([[0], np.cumsum(counts)])
        chosen = np.arange(len(image_ids)) if keep_empty else np.nonzero(counts)[0]
        self._images = chosen  # dataset index -> position in image_ids
        self.image_ids = [int(image_ids[i]) for i in chosen]
        self._sizes = sizes
        self._files = [self.coco.imgs[image_ids[i]]["file_name"] for i in range(len(image_ids))]

    def _size_of(self, img: dict) -> tuple[int, int]:
        """(height, width) of an image entry. COCO files made by other tools sometimes leave the size
        out: it is then read from the image file's header (its stored size, which the boxes are
        drawn on), and written into the entry for whoever reads it next."""
        height, width = img.get("height"), img.get("width")
        if height is None or width is None:
            from PIL import Image

            path = self.image_dir / str(img["file_name"])
            try:
                with Image.open(path) as im:
                    width, height = im.size
            except Exception as e:  # noqa: BLE001 - missing, unreadable or not an image: one line
                raise UserError(
                    f"{self.ann_file}: image {img['id']} has no 'width'/'height' and its file {path} cannot "
                    f'be read to find them ({type(e).__name__}); add "width" and "height" to that entry '
                    "or fix the file."
                ) from None
            img["height"], img["width"] = height, width
        ok = all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 and float(v).is_integer()
            for v in (height, width)
        )
        if not ok:
            raise UserError(
                f"{self.ann_file}: image {img['id']} has width={width!r}, height={height!r}; "
                "COCO sizes are whole numbers of pixels above 0."
            )
        return int(height), int(width)

    def __len__(self) -> int:
        return len(self._images)

    def image_info(self, index: int) -> tuple[int, Path, tuple[int, int]]:
        """(COCO image id, image path, (height, width)) of the dataset's `index`-th image."""
        i = int(self._images[index])
        h, w = self._sizes[i]
        return self.image_ids[index], self.image_dir / self._files[i], (int(h), int(w))

    def annotation(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(boxes XYXY float32 [N, 4], labels int64 [N], iscrowd int64 [N]) of the `index`-th image."""
        i = int(self._images[index])
        lo, hi = int(self._offsets[i]), int(self._offsets[i + 1])
        return (
            torch.from_numpy(self._boxes[lo:hi].copy()),
            torch.from_numpy(self._labels[lo:hi].copy()),
            torch.from_numpy(self._crowd[lo:hi].copy()),
        )

    def __getitem__(self, index: int) -> tuple[Any, dict]:
        image_id, path, size = self.image_info(index)
        if not path.is_file():
            raise UserError(
                f"{self.ann_file} lists image {path.name} (id {image_id}) but {path} does not exist; "
                "check data.root and the image folder."
            )
        image = read_image(path)
        if tuple(image.shape[-2:]) != size:
            raise UserError(
                f"{path} is {image.shape[-1]}x{image.shape[-2]} but {self.ann_file} says {size[1]}x{size[0]}; "
                "fix the entry."
            )
        boxes, labels, iscrowd = self.annotation(index)
        i = int(self._images[index])
        area = torch.from_numpy(self._areas[int(self._offsets[i]) : int(self._offsets[i + 1])].copy())
        return image, make_target(
            boxes, labels, canvas_size=size, image_id=image_id, iscrowd=iscrowd, area=area
        )


@register_dataset(
    "coco",
    kind="detection",
    classes=list(COCO_2017_CATEGORIES.values()),
    channels=3,
    native_size=None,
    fixture="litvision.data.fixtures.detection:coco_fixture",
)
class COCODataModule(DetectionDataModule):
    """COCO-format detection. `splits` names each stage's split: images in `<root>/<split>/`,
    annotations in `<root>/annotations/instances_<split>.json` (or `image_dirs` / `ann_files`)."""

    def __init__(
        self,
        root: str | Path,
        splits: dict[str, str] | None = None,
        image_dirs: dict[str, str] | None = None,
        ann_files: dict[str, str] | None = None,
        keep_empty_train: bool = False,
        keep_crowd_eval: bool = True,
        download: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(root=root, **kwargs)
        self.splits = dict(splits or {"train": "train2017", "val": "val2017", "test": "val2017"})
        for key in ("train", "val", "test"):
            if key not in self.splits:
                raise UserError(f"data.splits has no {key!r} entry; give e.g. {key}: val2017.")
        self.image_dirs = {k: self.root / v for k, v in (image_dirs or {}).items()}
        self.ann_files = {k: self.root / v for k, v in (ann_files or {}).items()}
        self.keep_empty_train = keep_empty_train
        self.keep_crowd_eval = keep_crowd_eval
        self.download = download
        self._categories: tuple[list[int], list[str]] | None = None

    def image_dir(self, stage: str) -> Path:
        return self.image_dirs.get(stage, self.root / self.splits[stage])

    def ann_file(self, stage: str) -> Path:
        return self.ann_files.get(stage, self.root / "annotations" / f"instances_{self.splits[stage]}.json")

    def _load_categories(self) -> tuple[list[int], list[str]]:
        if self._categories is None:
            # The val file is the small one; every split shares the category list.
            self._categories = categories_of(self.ann_file("val"))
            self._check_num_classes()
        return self._categories

    @property
    def category_ids(self) -> list[int]:
        """Contiguous label -> the dataset's own category id."""
        return self._load_categories()[0]

    @property
    def class_names(self) -> list[str]:  # type: ignore[override]
        return self._load_categories()[1]

    def _check_num_classes(self) -> None:
        assert self._categories is not None
        n = len(self._categories[0])
        if self._expected_classes is not None and self._expected_classes != n:
            raise UserError(
                f"data.num_classes={self._expected_classes} but {self.ann_file('val')} has {n} categories; "
                f"set data.num_classes={n}."
            )

    def prepare_data(self) -> None:
        if not self.download:
            return
        if not (self.root / "annotations").is_dir():
            url, md5 = COCO_ARCHIVES["annotations"]
            fetch_archive(url, md5, self.root, self.root, "the COCO 2017 annotations")
        for name in sorted(set(self.splits.values())):
            if not (self.root / name).is_dir():
                if name not in COCO_ARCHIVES:
                    raise UserError(f"Cannot download COCO split {name!r}; known: train2017, val2017.")
                url, md5 = COCO_ARCHIVES[name]
                fetch_archive(url, md5, self.root, self.root, f"COCO {name}")

    def _build(self, split: str) -> Dataset:
        train = split == "train"
        return COCODetection(
            self.image_dir(split),
            self.ann_file(split),
            category_ids=self.category_ids,
            keep_crowd=not train and self.keep_crowd_eval,
            keep_empty=not train or self.keep_empty_train,
        )
