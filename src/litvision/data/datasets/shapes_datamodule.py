"""DataModules for the shapes dataset: the real VOC and COCO DataModules reading generated data.

The data is generated into `root` on first use (a few seconds) and regenerated only when the
generation parameters change, so `make train EXP=<detector>_shapes` works offline from a clean clone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litvision.data.datasets.coco import COCODataModule
from litvision.data.datasets.registry import register_dataset
from litvision.data.datasets.shapes import SHAPES_CLASSES, ensure
from litvision.data.datasets.voc import VOCDataModule


class _Generates:
    def _init_generation(self, root: str | Path, generate: dict | None) -> None:
        self.shapes_root = Path(root).expanduser()
        self.generate = dict(generate or {})

    def prepare_data(self) -> None:
        # Rank 0 generates; Lightning holds the other ranks until prepare_data is done.
        ensure(self.shapes_root, **self.generate)

    def _ensure(self) -> None:
        ensure(self.shapes_root, **self.generate)


@register_dataset(
    "shapes_voc",
    kind="detection",
    classes=SHAPES_CLASSES,
    channels=3,
    native_size=128,  # generate.image_size
    fixture="litvision.data.fixtures.detection:shapes_voc_fixture",
)
class ShapesVOCDataModule(_Generates, VOCDataModule):
    """Shapes read through the VOC reader (VOCdevkit/VOC2007, splits train/val/test)."""

    def __init__(self, root: str | Path, generate: dict | None = None, **kwargs: Any) -> None:
        self._init_generation(root, generate)
        kwargs.setdefault("splits", {"train": ["2007/train"], "val": ["2007/val"], "test": ["2007/test"]})
        kwargs.setdefault("class_names", list(SHAPES_CLASSES))
        super().__init__(root=root, **kwargs)

    def _build(self, split: str):
        self._ensure()
        return super()._build(split)


@register_dataset(
    "shapes_coco",
    kind="detection",
    classes=SHAPES_CLASSES,
    channels=3,
    native_size=128,  # generate.image_size
    fixture="litvision.data.fixtures.detection:shapes_coco_fixture",
)
class ShapesCOCODataModule(_Generates, COCODataModule):
    """Shapes read through the COCO reader (coco/annotations/instances_<split>.json)."""

    def __init__(self, root: str | Path, generate: dict | None = None, **kwargs: Any) -> None:
        self._init_generation(root, generate)
        kwargs.setdefault("splits", {"train": "train", "val": "val", "test": "test"})
        super().__init__(root=Path(root) / "coco", **kwargs)

    def _load_categories(self):
        self._ensure()
        return super()._load_categories()

    def _build(self, split: str):
        self._ensure()
        return super()._build(split)
