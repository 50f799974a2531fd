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
(no hand-kept list); a reader elsewhere registers when its module is imported. The tests take
their datasets from here: a registered dataset without a fixture fails a test that names it, and
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from litvision.errors import UserError

KINDS = ("classification", "detection")
# Every module of this package is imported to find the built-in registrations.
READERS_PACKAGE = "litvision.data.datasets"

T = TypeVar("T", bound=type)


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: what it is, and which DataModule reads it."""

    name: str  # its data config: configs/data/<name>.yaml
    kind: str  # classification | detection
    datamodule: str  # dotted path of the DataModule class (what the data config's _target_ names)
    num_classes: int | None  # None: counted from the data (an image folder, a YOLO names file)
    classes: tuple[str, ...] | None  # label i is classes[i]; None: read from the files
    channels: int
    native_size: int | None  # square side of the stored images; None: any size
    mean: tuple[float, ...] | None  # per channel, of images scaled to [0, 1]; None: not normalised here
    std: tuple[float, ...] | None
    fixture: str | None  # "module:function" writing a tiny copy; None: there is none (a test fails)
    description: str = ""

    def fixture_maker(self) -> Callable[[Path], list[str]] | None:
        if self.fixture is None:
            return None
        module, _, func = self.fixture.partition(":")
        return getattr(importlib.import_module(module), func)

    def datamodule_class(self) -> type:
        module, _, name = self.datamodule.rpartition(".")
        return getattr(importlib.import_module(module), name)


_REGISTRY: dict[str, DatasetSpec] = {}
_loaded = False


def register_dataset(
    name: str,
    *,
    kind: str,
    channels: int,
    native_size: int | None,
    fixture: str | None,
    classes: Sequence[str] | None = None,
    num_classes: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    description: str = "",
) -> Callable[[T], T]:
    """Class decorator: register the decorated DataModule as dataset `name` (see the module doc)."""
    if kind not in KINDS:
        raise ValueError(f"register_dataset({name!r}): kind={kind!r} is not one of {KINDS}")
    if classes is not None:
        if num_classes not in (None, len(classes)):
            raise ValueError(
                f"register_dataset({name!r}): {len(classes)} classes but num_classes={num_classes}"
            )
        num_classes = len(classes)
    for what, stats in (("mean", mean), ("std", std)):
        if stats is not None and len(stats) != channels:
            raise ValueError(
                f"register_dataset({name!r}): {what} has {len(stats)} values for {channels} channels"
            )

    def register(cls: T) -> T:
        spec = DatasetSpec(
            name=name,
            kind=kind,
            datamodule=f"{cls.__module__}.{cls.__qualname__}",
            num_classes=num_classes,
            classes=None if classes is None else tuple(classes),
            channels=channels,
            native_size=native_size,
            mean=None if mean is None else tuple(float(m) for m in mean),
            std=None if std is None else tuple(float(s) for s in std),
            fixture=fixture,
            description=description or (cls.__doc__ or "").strip().split("\n")[0],
        )
        old = _REGISTRY.get(name)
        if old is not None and old.datamodule != spec.datamodule:
            raise ValueError(
                f"dataset {name!r} is registered twice: by {old.datamodule} and {spec.datamodule}"
            )
        _REGISTRY[name] = spec
        cls.dataset_spec = spec  # type: ignore[attr-defined]
        return cls

    return register


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
    return {n: s for n, s in sorted(_REGISTRY.items()) if kind is None or s.kind == kind}


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
