"""The registry behind the data catalog: `register_dataset` and what it records (`DatasetSpec`).

Readers import this module, never `litvision.data.catalog`: the catalog imports every reader (by
name, to find their registrations), so readers importing the catalog would close an import circle.
Users import both names from `litvision.data.catalog`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

KINDS = ("classification", "detection")
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


def registered() -> dict[str, DatasetSpec]:
    """What has registered so far (the catalog first imports every built-in reader)."""
    return dict(_REGISTRY)
