"""Old module paths of `litvision.data` (before the datasets/ pipeline/ transforms/ layout) kept importable.

Checkpoints written before the move record their DataModule by dotted path (`checkpoint["litvision"]
["datamodule"]`, e.g. `litvision.data.digits.DigitsDataModule`) and predict/export import it by that
path; notebooks and user code import `litvision.data.mnist`. One import hook maps each old module name
onto the module that now holds the code, so both keep working with no stub file per module: the old
name is the SAME module object as the new one (`litvision.data.mnist.MNISTDataModule is
litvision.data.datasets.mnist.MNISTDataModule`), and `python -m litvision.data.convert ...` runs too.
The hook is the one `importlib` documents for this (a `sys.meta_path` finder; see PEP 451).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import CodeType, ModuleType

#: old module -> the module that holds its code now.
MOVED: dict[str, str] = {
    "litvision.data.base": "litvision.data.classification",
    "litvision.data.mnist": "litvision.data.datasets.mnist",
    "litvision.data.cifar": "litvision.data.datasets.cifar",
    "litvision.data.flowers": "litvision.data.datasets.flowers",
    "litvision.data.voc": "litvision.data.datasets.voc",
    "litvision.data.coco": "litvision.data.datasets.coco",
    "litvision.data.yolo": "litvision.data.datasets.yolo",
    "litvision.data.shapes": "litvision.data.datasets.shapes",
    "litvision.data.shapes_datamodule": "litvision.data.datasets.shapes_datamodule",
    "litvision.data.digits": "litvision.data.datasets.digits",
    "litvision.data.image_folder": "litvision.data.datasets.image_folder",
    "litvision.data.convert": "litvision.data.datasets.convert",
    "litvision.data.splits": "litvision.data.pipeline.splits",
    "litvision.data.samplers": "litvision.data.pipeline.samplers",
    "litvision.data.duplicates": "litvision.data.pipeline.duplicates",
    "litvision.data.device_cache": "litvision.data.pipeline.device_cache",
    "litvision.data.download": "litvision.data.pipeline.download",
    "litvision.data.decode": "litvision.data.pipeline.decode",
    "litvision.data.folders": "litvision.data.pipeline.resolvers",
    "litvision.data.presets": "litvision.data.transforms.classification",
    "litvision.data.det_transforms": "litvision.data.transforms.detection",
    "litvision.data.mixing": "litvision.data.transforms.mixing",
}
# `litvision.data.datasets` (the old image-source module) is now the readers' package, which
# re-exports its three classes (datasets/__init__.py).


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old name and hands back the new module itself (not a copy: one class, one identity)."""

    def find_spec(self, fullname: str, path: object = None, target: object = None):  # noqa: ANN201
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        """The new module has run already."""

    def get_code(self, fullname: str) -> CodeType | None:
        # `python -m <old name>` (runpy) asks for the code to run as __main__.
        spec = importlib.util.find_spec(MOVED[fullname])
        return spec.loader.get_code(spec.name) if spec and spec.loader else None  # type: ignore[attr-defined]


def install() -> None:
    """Put the alias finder on `sys.meta_path` once (importing `litvision.data` does it)."""
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
