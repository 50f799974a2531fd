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

import torch
from torch.utils.data import Dataset

from litvision.data.detection import (
    BoxStats,
    DetectionDataModule,
    clean_boxes,
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
    """One COCO split read with pycocotools, boxes checked and converted up front."""

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
        stats = BoxStats()
        self.items: list[dict[str, Any]] = []
        for image_id in sorted(self.coco.imgs):
            info = self.coco.imgs[image_id]
            width, height = int(info["width"]), int(info["height"])
            boxes, labels, crowd = [], [], []
            for ann in self.coco.imgToAnns.get(image_id, []):
                if ann["category_id"] not in cat_to_label:
                    continue  # a category outside the chosen class list
                x, y, w, h = (float(v) for v in ann["bbox"])
                boxes.append([x, y, x + w, y + h])
                labels.append(cat_to_label[ann["category_id"]])
                crowd.append(int(bool(ann.get("iscrowd", 0)) or bool(ann.get("ignore", 0))))
            boxes_t, keep = clean_boxes(
                torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                height,
                width,
                stats,
                f"image {image_id}",
            )
            crowd_t = torch.tensor(crowd, dtype=torch.int64)[keep]
            labels_t = torch.tensor(labels, dtype=torch.int64)[keep]
            boxes_t = boxes_t[keep]
            if not keep_crowd:
                boxes_t, labels_t, crowd_t = (
                    boxes_t[crowd_t == 0],
                    labels_t[crowd_t == 0],
                    crowd_t[crowd_t == 0],
                )
            if not keep_empty and len(boxes_t) == 0:
                continue
            self.items.append(
                {"id": image_id, "file": self.image_dir / info["file_name"], "size": (height, width),
                 "boxes": boxes_t, "labels": labels_t, "iscrowd": crowd_t}
            )  # fmt: skip
        stats.warn(self.ann_file)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Any, dict]:
        item = self.items[index]
        if not item["file"].is_file():
            raise UserError(
                f"{self.ann_file} lists image {item['file'].name} (id {item['id']}) but {item['file']} does not exist; "
                "check data.root and the image folder."
            )
        image = read_image(item["file"])
        if tuple(image.shape[-2:]) != item["size"]:
            h, w = item["size"]
            raise UserError(
                f"{item['file']} is {image.shape[-1]}x{image.shape[-2]} but {self.ann_file} says {w}x{h}; fix the entry."
            )
        return image, make_target(
            item["boxes"],
            item["labels"],
            canvas_size=item["size"],
            image_id=item["id"],
            iscrowd=item["iscrowd"],
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
