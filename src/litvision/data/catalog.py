"""Datasets by name: what each one is (kind, classes, channels, size, statistics) and how to make a tiny copy.

A reader registers its DataModule under the name of its data config (`configs/data/<name>.yaml`)::

    @register_dataset(
        "mnist", kind="classification", classes=[str(i) for i in range(10)], channels=1,
        native_size=28, mean=MNIST_MEAN, std=MNIST_STD,
        fixture="litvision.data.fixtures.classification:make_mnist",
    )
    class MNISTDataModule(ClassificationDataModule): ...

    litvision list datasets                      # every registered dataset, one line each

The catalog finds litvision's own readers by importing every module of `litvision.data.datasets`
(no hand-kept list); they take `register_dataset` from `litvision.data.datasets.registry`, so no
import circle closes. A reader elsewhere imports it from here and registers when its module is
imported. The tests take their datasets from here: a registered dataset without a fixture fails a test that names it, and
every experiment runs on its dataset's fixture. As detectron2's `DatasetCatalog`
(detectron2/data/catalog.py) keeps datasets apart from the code that loads them, an entry is data
about a dataset, and its DataModule the code.

The fixture is a "module:function" string, so that importing a reader does not import test
helpers: the function writes the dataset in its own on-disk format into a folder and returns the
Hydra overrides that point the data config at it (`["data.root=/tmp/x"]`).
"""

from __future__ import annotations

import importlib
import pkgutil

from litvision.data.datasets.registry import KINDS, DatasetSpec, register_dataset, registered
from litvision.errors import UserError

__all__ = ["KINDS", "DatasetSpec", "dataset", "datasets", "missing_fixtures", "register_dataset"]

# Every module of this package is imported to find the built-in registrations.
READERS_PACKAGE = "litvision.data.datasets"
_loaded = False


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    package = importlib.import_module(READERS_PACKAGE)
    for info in pkgutil.iter_modules(package.__path__, f"{READERS_PACKAGE}."):
        importlib.import_module(info.name)
    _loaded = True


def datasets(kind: str | None = None) -> dict[str, DatasetSpec]:
    """Every registered dataset (of `kind`, when given), by name."""
    _load_builtin()
    return {n: s for n, s in sorted(registered().items()) if kind is None or s.kind == kind}


def dataset(name: str) -> DatasetSpec:
    """The entry `name`; an unknown name is one line listing the known ones."""
    known = datasets()
    if name not in known:
        raise UserError(f"No dataset named {name!r} in the data catalog; registered: {', '.join(known)}.")
    return known[name]


def missing_fixtures() -> list[str]:
    """One line per registered dataset that has no fixture (the tests could not run it)."""
    return [
        f"dataset {s.name!r} ({s.datamodule}) registers no fixture: pass fixture='module:function' to "
        "register_dataset, a function that writes a tiny copy of the data and returns its overrides"
        for s in datasets().values()
        if s.fixture is None
    ]
