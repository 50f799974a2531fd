"""YOLO txt detection: one label file per image, one `class cx cy w h` line per box, normalised.

Layout (as Ultralytics/darknet exports it)::

    <root>/data.yaml            names: [circle, square, ...]  (or {0: circle, ...}); optional
                                train: images/train, val: images/val, test: images/test
    <root>/names.txt            alternative to data.yaml: one class name per line
    <root>/images/<split>/x.jpg
    <root>/labels/<split>/x.txt  a missing or empty file is an image with no objects

`cx cy w h` are the box centre and size divided by the image width/height, in the same 0-based
continuous pixel coordinates as everywhere else in litvision: for a W x H image and a box
(x1, y1, x2, y2), cx = (x1 + x2) / 2W, cy = (y1 + y2) / 2H, w = (x2 - x1) / W, h = (y2 - y1) / H.
Worked example: 500 x 375, (69, 172, 270, 330) -> `0.339 0.6693333 0.402 0.4213333`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from litvision.data.datasets.registry import register_dataset
from litvision.data.detection import BoxStats, DetectionDataModule, clean_boxes, make_target, read_image
from litvision.data.pipeline.records import BoxTable, PathTable
from litvision.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def xyxy_to_yolo(box: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return (x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height


def yolo_to_xyxy(cxcywh: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    cx, cy, w, h = (float(v) for v in cxcywh)
    return (cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height


def _fmt(value: float) -> str:
    # Seven decimals, trailing zeros stripped: 0.3390000 -> 0.339, 0.66933333 -> 0.6693333.
    text = f"{value:.7f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def yolo_line(label: int, box: Sequence[float], width: int, height: int) -> str:
    """The label-file line for a 0-based XYXY pixel box."""
    return " ".join([str(int(label)), *(_fmt(v) for v in xyxy_to_yolo(box, width, height))])


def read_names(root: Path) -> list[str]:
    """Class names from `<root>/data.yaml` (`names:` list or {index: name}) or `<root>/names.txt`."""
    data_yaml, names_txt = root / "data.yaml", root / "names.txt"
    if data_yaml.is_file():
        names = _read_yaml(data_yaml).get("names")
        if isinstance(names, dict):
            try:
                keys = sorted(int(k) for k in names)
            except ValueError:
                raise UserError(f"{data_yaml}: names keys must be class indices 0..C-1.") from None
            if keys != list(range(len(keys))):
                raise UserError(
                    f"{data_yaml}: names keys must be 0..{len(keys) - 1} without gaps, got {keys}."
                )
            return [str(names[k] if k in names else names[str(k)]) for k in keys]
        if isinstance(names, list) and names:
            return [str(n) for n in names]
        raise UserError(f"{data_yaml} has no 'names' list; add `names: [class0, class1, ...]`.")
    if names_txt.is_file():
        return [line.strip() for line in names_txt.read_text().splitlines() if line.strip()]
    raise UserError(
        f"No class names for the YOLO dataset at {root}: add {data_yaml} with `names: [...]` or {names_txt}."
    )


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise UserError(f"{path} is not valid YAML ({err}).") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must be a YAML mapping with a 'names' key.")
    return data


def split_dirs(root: Path, split: str) -> tuple[Path, Path]:
    """(images folder, labels folder) of a split: data.yaml's entry if any, else images/<split>."""
    rel: Any = None
    data_yaml = root / "data.yaml"
    if data_yaml.is_file():
        data = _read_yaml(data_yaml)
        rel = data.get(split)
        base = root
        if data.get("path"):  # relative to the dataset folder, as Ultralytics reads it
            base = Path(data["path"]) if Path(data["path"]).is_absolute() else root / data["path"]
    if not rel:
        base, rel = root, f"images/{split}"
    image_dir = Path(rel) if Path(rel).is_absolute() else base / rel
    # Ultralytics finds labels by swapping the last `images` path component for `labels`.
    parts = list(image_dir.parts)
    if "images" not in parts:
        raise UserError(
            f"YOLO image folder {image_dir} has no 'images' component to map to its labels folder."
        )
    i = len(parts) - 1 - parts[::-1].index("images")
    parts[i] = "labels"
    return image_dir, Path(*parts)


def parse_label_file(path: Path, num_classes: int) -> tuple[list[int], list[list[float]]]:
    labels: list[int] = []
    boxes: list[list[float]] = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise UserError(f"{path}:{lineno}: expected `class cx cy w h`, got {line.strip()!r}.")
        try:
            label, values = int(fields[0]), [float(v) for v in fields[1:]]
        except ValueError:
            raise UserError(
                f"{path}:{lineno}: expected an integer class and four numbers, got {line.strip()!r}."
            ) from None
        if not 0 <= label < num_classes:
            raise UserError(
                f"{path}:{lineno}: class {label} is outside 0..{num_classes - 1} (the names list has {num_classes}); "
                "fix the label or the names list."
            )
        labels.append(label)
        boxes.append(values)
    return labels, boxes


class YOLODetection(Dataset):
    """One split of a YOLO txt dataset; label files parsed and checked up front."""

    def __init__(
        self, root: str | Path, split: str = "train", class_names: Sequence[str] | None = None
    ) -> None:
        from PIL import Image

        self.root, self.split = Path(root), split
        self.class_names = list(class_names) if class_names is not None else read_names(self.root)
        self.image_dir, self.label_dir = split_dirs(self.root, split)
        if not self.image_dir.is_dir():
            raise UserError(
                f"No YOLO image folder {self.image_dir} for split {split!r}; check data.root and data.yaml."
            )
        files = sorted(p for p in self.image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        stats = BoxStats()
        sizes: list[tuple[int, int]] = []
        all_boxes: list[np.ndarray] = []
        all_labels: list[np.ndarray] = []
        for image in files:
            label_file = self.label_dir / f"{image.stem}.txt"
            labels, norm = (
                parse_label_file(label_file, len(self.class_names)) if label_file.is_file() else ([], [])
            )
            with Image.open(image) as im:
                width, height = im.size
            boxes = torch.tensor([yolo_to_xyxy(b, width, height) for b in norm], dtype=torch.float32).reshape(
                -1, 4
            )
            boxes, keep = clean_boxes(boxes, height, width, stats, str(label_file))
            sizes.append((height, width))
            all_boxes.append(boxes[keep].numpy())
            all_labels.append(torch.tensor(labels, dtype=torch.int64)[keep].numpy())
        stats.warn(self.label_dir)
        # Flat arrays, not a list of dicts: workers reading them copy nothing (pipeline/records.py).
        self._files = PathTable(files)
        self._sizes = np.asarray(sizes, dtype=np.int64).reshape(-1, 2)
        self._boxes = BoxTable(all_boxes, all_labels)

    def item(self, index: int) -> dict[str, Any]:
        """The `index`-th image: {"file", "size" (h, w), "boxes" XYXY, "labels"}."""
        boxes, labels, _ = self._boxes.get(index)
        h, w = self._sizes[index]
        return {
            "file": self._files[index],
            "size": (int(h), int(w)),
            "boxes": torch.from_numpy(boxes),
            "labels": torch.from_numpy(labels),
        }

    @property
    def items(self) -> list[dict[str, Any]]:
        """Every image's `item` (built on demand: for converters, not the training path)."""
        return [self.item(i) for i in range(len(self))]

    def __len__(self) -> int:
        return len(self._files)

    def __getitem__(self, index: int) -> tuple[Any, dict]:
        item = self.item(index)
        image = read_image(item["file"])
        return image, make_target(item["boxes"], item["labels"], canvas_size=item["size"], image_id=index)


@register_dataset(
    "yolo",
    kind="detection",
    num_classes=None,  # the names in data.yaml / names.txt
    channels=3,
    native_size=None,
    fixture="litvision.data.fixtures.detection:yolo_fixture",
)
class YOLODataModule(DetectionDataModule):
    """A YOLO txt dataset; class names from data.yaml / names.txt unless `class_names` is given."""

    def __init__(
        self,
        root: str | Path,
        splits: dict[str, str] | None = None,
        class_names: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(root=root, **kwargs)
        self.splits = dict(splits or {"train": "train", "val": "val", "test": "test"})
        self._names = list(class_names) if class_names is not None else None
        if self._names is not None:
            self._check_num_classes()

    @property
    def class_names(self) -> list[str]:  # type: ignore[override]
        if self._names is None:
            self._names = read_names(self.root)
            self._check_num_classes()
        return self._names

    def _build(self, split: str) -> Dataset:
        return YOLODetection(self.root, self.splits[split], self.class_names)
