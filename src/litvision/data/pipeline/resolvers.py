"""Class folders of an image-folder dataset, and the `${class_count:...}` config resolver.

No torch here: the resolver runs when the config resolves, so that
`data=image_folder data.root=/my/photos` needs no `data.num_classes`
(and the model config's `${data.num_classes}` gets the folder's count).
"""

from __future__ import annotations

import os
from pathlib import Path


def class_folders(root: str | Path) -> list[str]:
    """Sorted names of the non-hidden sub-folders of `root`: the classes, label i = i-th name."""
    with os.scandir(root) as entries:
        return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))


def class_count(root: str) -> int | None:
    """Number of class folders under `root`, or None when it cannot be listed (the DataModule then says why)."""
    try:
        return len(class_folders(Path(root).expanduser()))
    except OSError:
        return None


def register_resolvers() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("class_count"):
        OmegaConf.register_new_resolver("class_count", class_count)
    from litvision.data.pipeline.choose import register

    register()  # ${preprocessing:<key>}: the size and statistics the (model, dataset) pair gives
