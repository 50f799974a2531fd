"""Pascal VOC detection: the VOCdevkit layout, read from its XML files.

Layout (what the official tars unpack to)::

    <root>/VOCdevkit/VOC2007/Annotations/<id>.xml
    <root>/VOCdevkit/VOC2007/ImageSets/Main/{train,val,trainval,test}.txt
    <root>/VOCdevkit/VOC2007/JPEGImages/<id>.jpg

Coordinates. VOC boxes are `xmin ymin xmax ymax` in 1-based, inclusive pixel indices: a box
with xmin=1, xmax=W covers every column of a W-pixel-wide image. In litvision's 0-based
continuous XYXY (the one torchvision and COCO use, where a W-wide image spans [0, W]) that
box is [0, W]. So the conversion is

    x1 = xmin - 1,  y1 = ymin - 1,  x2 = xmax,  y2 = ymax

(as detectron2 does), and its inverse `xmin = x1 + 1, xmax = x2` when writing XML. Float
coordinates in XML are accepted as they are.

`difficult` objects are dropped from training targets by default and kept for evaluation
with `iscrowd=1`, so the mAP metric ignores them (neither true nor false positives), as the
VOC devkit does.

    python -m litvision.train experiment=fasterrcnn_voc data.root=/data/voc            # 07+12
    python -m litvision.train experiment=fasterrcnn_voc data.year=2007 data.download=true
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from litvision.data.datasets.registry import register_dataset
from litvision.data.detection import (
    BoxStats,
    DetectionDataModule,
    clean_boxes,
    concat,
    fetch_archive,
    make_target,
    read_image,
)
from litvision.data.pipeline.records import BoxTable, PathTable
from litvision.errors import UserError

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip

# The official archives (torchvision's DATASET_YEAR_DICT mirrors these URLs and md5s).
VOC_ARCHIVES: dict[str, list[tuple[str, str]]] = {
    "2007": [
        (
            "https://thor.robots.ox.ac.uk/pascal/VOC/voc2007/VOCtrainval_06-Nov-2007.tar",
            "c52e279531787c972589f7e41ab4ae64",
        ),
        (
            "https://thor.robots.ox.ac.uk/pascal/VOC/voc2007/VOCtest_06-Nov-2007.tar",
            "b6e924de25625d8de591ea690078ad9f",
        ),
    ],
    "2012": [
        (
            "https://thor.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
            "6cd6e144f989b92b3379bac3b3de84fd",
        ),
    ],
}

# What each `year` trains, validates and tests on. VOC2012's test annotations are not public.
YEAR_SPLITS: dict[str, dict[str, list[str]]] = {
    "2007": {"train": ["2007/trainval"], "val": ["2007/test"], "test": ["2007/test"]},
    "2012": {"train": ["2012/train"], "val": ["2012/val"], "test": ["2012/val"]},
    "07+12": {"train": ["2007/trainval", "2012/trainval"], "val": ["2007/test"], "test": ["2007/test"]},
}


@dataclass
class VOCRecord:
    image: Path
    width: int
    height: int
    boxes: torch.Tensor  # [N, 4] 0-based XYXY, clipped to the image
    labels: torch.Tensor  # [N] int64
    difficult: torch.Tensor  # [N] bool


def _text(node: ET.Element, tag: str, xml_path: Path) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise UserError(
            f"{xml_path}: <{node.tag}> has no <{tag}>; fix the annotation or remove the image from the split."
        )
    return child.text.strip()


def _number(node: ET.Element, tag: str, xml_path: Path) -> float:
    value = _text(node, tag, xml_path)
    try:
        return float(value)
    except ValueError:
        raise UserError(f"{xml_path}: <{tag}>{value}</{tag}> is not a number; fix the annotation.") from None


def parse_voc_xml(
    xml_path: Path, class_to_idx: dict[str, int], image_dir: Path, stats: BoxStats | None = None
) -> VOCRecord:
    """One annotation file -> 0-based XYXY boxes (see the module docstring), labels, difficult flags."""
    stats = stats if stats is not None else BoxStats()
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as err:
        raise UserError(
            f"{xml_path} is not valid XML ({err}); fix or re-extract the annotation file."
        ) from None
    except OSError as err:
        raise UserError(f"Cannot read the annotation {xml_path} ({err}).") from None
    filename = root.findtext("filename", default="").strip() or f"{xml_path.stem}.jpg"
    image = image_dir / filename
    size = root.find("size")
    width = (
        int(_number(size, "width", xml_path)) if size is not None and size.find("width") is not None else 0
    )
    height = (
        int(_number(size, "height", xml_path)) if size is not None and size.find("height") is not None else 0
    )
    if width <= 0 or height <= 0:
        # A few VOC files carry size 0; the image header is the truth.
        from PIL import Image

        try:
            with Image.open(image) as im:
                width, height = im.size
        except OSError as err:
            raise UserError(
                f"{xml_path} has no image size and its image {image} cannot be read ({err})."
            ) from None
    boxes, labels, difficult = [], [], []
    for obj in root.iter("object"):
        name = _text(obj, "name", xml_path)
        if name not in class_to_idx:
            raise UserError(
                f"{xml_path}: object class {name!r} is not in the class list ({', '.join(list(class_to_idx)[:5])}, ...); "
                "add it to data.class_names (and data.num_classes) or remove the object."
            )
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise UserError(f"{xml_path}: object {name!r} has no <bndbox>; fix the annotation.")
        xmin, ymin, xmax, ymax = (_number(bndbox, t, xml_path) for t in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append([xmin - 1.0, ymin - 1.0, xmax, ymax])
        labels.append(class_to_idx[name])
        difficult.append(obj.findtext("difficult", default="0").strip() in ("1", "true", "True"))
    boxes_t = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    boxes_t, keep = clean_boxes(boxes_t, height, width, stats, str(xml_path))
    return VOCRecord(
        image=image,
        width=width,
        height=height,
        boxes=boxes_t[keep],
        labels=torch.tensor(labels, dtype=torch.int64)[keep],
        difficult=torch.tensor(difficult, dtype=torch.bool)[keep],
    )


def voc_year_dir(root: Path, year: str) -> Path:
    return root / "VOCdevkit" / f"VOC{year}"


class VOCDetection(Dataset):
    """One VOC year and split (e.g. 2007/test), every annotation parsed and checked up front.

    `keep_difficult=False` drops difficult objects; True keeps them flagged `iscrowd=1`.
    """

    def __init__(
        self,
        root: str | Path,
        year: str = "2007",
        split: str = "trainval",
        class_names: Sequence[str] = VOC_CLASSES,
        keep_difficult: bool = False,
    ) -> None:
        self.root = Path(root)
        self.year, self.split = str(year), split
        self.class_names = list(class_names)
        self.keep_difficult = keep_difficult
        base = voc_year_dir(self.root, self.year)
        split_file = base / "ImageSets" / "Main" / f"{split}.txt"
        if not split_file.is_file():
            have = sorted(p.stem for p in split_file.parent.glob("*.txt") if "_" not in p.stem)
            raise UserError(
                f"No VOC split file {split_file}"
                + (f" (splits there: {', '.join(have)})" if have else "")
                + "; point data.root at the folder holding VOCdevkit/ or set data.download=true."
            )
        self.ids = [line.split()[0] for line in split_file.read_text().splitlines() if line.strip()]
        class_to_idx = {c: i for i, c in enumerate(self.class_names)}
        stats = BoxStats()
        records: list[VOCRecord] = []
        for image_id in self.ids:
            xml_path = base / "Annotations" / f"{image_id}.xml"
            if not xml_path.is_file():
                raise UserError(
                    f"{split_file} lists {image_id} but {xml_path} does not exist; fix the split file."
                )
            records.append(parse_voc_xml(xml_path, class_to_idx, base / "JPEGImages", stats))
        stats.warn(base / "Annotations")
        # Kept as flat arrays, not the list of records: workers reading them copy nothing (pipeline/records.py).
        self._images = PathTable(r.image for r in records)
        self._sizes = np.array([(r.height, r.width) for r in records], dtype=np.int64).reshape(-1, 2)
        self._boxes = BoxTable(
            [r.boxes.numpy() for r in records],
            [r.labels.numpy() for r in records],
            [r.difficult.numpy() for r in records],
        )

    def record(self, index: int) -> VOCRecord:
        """The `index`-th image's annotation (difficult objects included, flagged)."""
        boxes, labels, difficult = self._boxes.get(index)
        h, w = self._sizes[index]
        return VOCRecord(
            image=self._images[index],
            width=int(w),
            height=int(h),
            boxes=torch.from_numpy(boxes),
            labels=torch.from_numpy(labels),
            difficult=torch.from_numpy(difficult),
        )

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, index: int) -> tuple[Any, dict]:
        rec = self.record(index)
        image = read_image(rec.image)
        h, w = image.shape[-2:]
        if (h, w) != (rec.height, rec.width):
            raise UserError(
                f"{rec.image} is {w}x{h} but its annotation says {rec.width}x{rec.height}; fix the XML <size>."
            )
        keep = torch.ones_like(rec.difficult) if self.keep_difficult else ~rec.difficult
        return image, make_target(
            rec.boxes[keep],
            rec.labels[keep],
            canvas_size=(h, w),
            image_id=index,
            iscrowd=rec.difficult[keep].long(),
        )


def download_voc(root: Path, years: Sequence[str]) -> None:
    """Fetch the official tars for `years` into `root` unless the VOCdevkit folders are there."""
    for year in years:
        if (voc_year_dir(root, year) / "Annotations").is_dir():
            continue
        for url, md5 in VOC_ARCHIVES[year]:
            fetch_archive(url, md5, root, root, f"Pascal VOC {year}")


@register_dataset(
    "voc",
    kind="detection",
    classes=VOC_CLASSES,
    channels=3,
    native_size=None,
    fixture="litvision.data.fixtures.detection:voc_fixture",
)
class VOCDataModule(DetectionDataModule):
    """Pascal VOC 2007, 2012 or 07+12 (`year`), or any `splits` given as `["<year>/<split>", ...]`.

    Difficult objects: `keep_difficult_train` (default False: left out of training targets);
    val/test keep them flagged `iscrowd=1` for the evaluation to ignore (`keep_difficult_eval`).
    """

    def __init__(
        self,
        root: str | Path,
        year: str = "07+12",
        splits: dict[str, list[str]] | None = None,
        class_names: Sequence[str] | None = None,
        keep_difficult_train: bool = False,
        keep_difficult_eval: bool = True,
        download: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(root=root, **kwargs)
        year = str(year)
        if splits is None:
            if year not in YEAR_SPLITS:
                raise UserError(
                    f"data.year={year!r} is not one of {', '.join(YEAR_SPLITS)}; or give data.splits."
                )
            splits = YEAR_SPLITS[year]
        self.splits = {k: [str(s) for s in v] for k, v in dict(splits).items()}
        for key in ("train", "val", "test"):
            if key not in self.splits:
                raise UserError(f"data.splits has no {key!r} entry; give e.g. {key}: [2007/test].")
        self.class_names = list(class_names) if class_names is not None else list(VOC_CLASSES)
        self.keep_difficult_train = keep_difficult_train
        self.keep_difficult_eval = keep_difficult_eval
        self.download = download
        self._check_num_classes()

    def _years(self) -> list[str]:
        return sorted({s.split("/")[0] for v in self.splits.values() for s in v})

    def prepare_data(self) -> None:
        if self.download:
            unknown = [y for y in self._years() if y not in VOC_ARCHIVES]
            if unknown:
                raise UserError(f"Cannot download VOC year(s) {unknown}; known: {', '.join(VOC_ARCHIVES)}.")
            download_voc(self.root, self._years())

    def _build(self, split: str) -> Dataset:
        keep = self.keep_difficult_train if split == "train" else self.keep_difficult_eval
        parts = []
        for entry in self.splits[split]:
            if "/" not in entry:
                raise UserError(f"data.splits.{split} entry {entry!r} must look like '2007/trainval'.")
            year, name = entry.split("/", 1)
            parts.append(VOCDetection(self.root, year, name, self.class_names, keep_difficult=keep))
        return concat(parts)
