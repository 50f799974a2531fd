"""Dataset readers, each with its DataModule: files on disk in the dataset's own format -> images and labels."""

from __future__ import annotations

from typing import Any

# The image sources lived in `litvision.data.datasets` (a module) before it became this package.
_SOURCES = ("TensorImages", "FileImages", "ImageSubset")


def __getattr__(name: str) -> Any:
    if name in _SOURCES:
        from litvision.data.datasets import sources

        return getattr(sources, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
