"""Plain nn.Modules and model factories; no training logic lives here.

    registry.py        every model by name, with its task kind, builder and weights spec
    weights.py         the one loader of pretrained weights (files, torchvision and timm names)
    classification/    litvision's classifiers and the torchvision / timm builders
    detection/         the detectors (torchvision's, YOLOv1)

Checkpoints and run folders written before the classifiers moved into `classification/` name them
as `_target_: litvision.models.cnn.SmallCNN` (and `.lenet`, `.alexnet`, `.resnet`, `.timm_models`).
Hydra resolves a `_target_` attribute by attribute, so the module-level `__getattr__` below is what
keeps those checkpoints loading; new configs name the modules where they live.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

# Old module name (today's checkpoints) -> where it lives now.
LEGACY_MODULES = {
    "cnn": "litvision.models.classification.cnn",
    "lenet": "litvision.models.classification.lenet",
    "alexnet": "litvision.models.classification.alexnet",
    "resnet": "litvision.models.classification.resnet",
    "timm_models": "litvision.models.classification.timm_models",
}


def canonical_target(target: str | None) -> str | None:
    """`target` with an old module path rewritten to the current one (`litvision.models.cnn.X` ->
    `litvision.models.classification.cnn.X`); anything else unchanged."""
    if not target:
        return target
    for old, new in LEGACY_MODULES.items():
        prefix = f"litvision.models.{old}."
        if target.startswith(prefix):
            return new + "." + target[len(prefix) :]
    return target


def __getattr__(name: str) -> ModuleType:
    if name in LEGACY_MODULES:
        return import_module(LEGACY_MODULES[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
