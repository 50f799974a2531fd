"""Preprocessing is read, not guessed: what one image goes through before the model sees it.

    pre = for_datamodule(type(dm), dm.hparams)      # what a DataModule feeds its model at eval time
    pre = from_checkpoint(ckpt)                     # what a checkpoint recorded (or, older ones, implies)
    x = pre.transform()(read_rgb("cat.jpg"))        # the float input, as predict builds it
    pre.to_dict()                                   # export.json's "preprocessing", reproducible with PIL + numpy

One `Preprocessing` describes every step in the order they run: decode to 8-bit RGB, resize
(shorter side to `resize`, or exactly to `resize` = [H, W]), centre crop to `crop`, scale by 1/255,
keep `channels` (1: grey, the luma of ITU-R 601-2 that PIL's `convert("L")` uses, computed in float),
subtract `mean`, divide by `std`, lay out as C x H x W. torchvision's antialiased bilinear resize of
uint8 images is Pillow's (torchvision ported it), so `Image.resize(..., Image.BILINEAR)` redoes it.

What a training run uses is decided once, from the pair (model spec in models/registry.py, dataset
spec in data/catalog.py) unless the experiment states it: see data/pipeline/choose.py, the
`${preprocessing:<key>}` values of configs/data/base/images.yaml. The checkpoint records the result
(`checkpoint_fields`), so predict, test and export read it instead of guessing.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from litvision.errors import UserError

# ITU-R 601-2 luma: PIL's convert("L") and torchvision's rgb_to_grayscale use it too.
GREY_WEIGHTS = (0.299, 0.587, 0.114)
SCALE = 1.0 / 255.0
DATA_TARGET_PREFIX = "litvision.data."


@dataclass(frozen=True)
class Preprocessing:
    """The eval-time steps from an image file to the model's input (see the module doc)."""

    kind: str  # classification | detection
    channels: int  # 1 (grey) or 3 (RGB)
    size: tuple[int, int] | None  # (H, W) the model is fed; None: any (a detector resizes itself)
    resize: int | tuple[int, int] | None  # int: the shorter side; (H, W): exactly; None: no resize
    crop: tuple[int, int] | None  # centre crop (H, W), or None
    interpolation: str = "bilinear"
    mean: tuple[float, ...] | None = None  # None: not normalised here (detectors normalise inside)
    std: tuple[float, ...] | None = None
    scale: float = SCALE

    def to_dict(self) -> dict[str, Any]:
        """Everything a deployer needs, in plain JSON types; `from_dict` reads it back."""
        resize = None
        if self.resize is not None:
            exact = not isinstance(self.resize, int)
            resize = {
                "size": list(self.resize) if exact else self.resize,
                "mode": "exact" if exact else "shorter_side",
                "interpolation": self.interpolation,
                "antialias": True,
            }
        return {
            "kind": self.kind,
            "steps": ["decode_rgb8", "resize", "center_crop", "scale", "channels", "normalize", "to_chw"],
            "decode": "8-bit RGB (EXIF orientation applied; grey, palette, CMYK and RGBA converted to RGB)",
            "resize": resize,
            "center_crop": list(self.crop) if self.crop else None,
            "scale": self.scale,
            "channels": self.channels,
            "channel_order": "RGB" if self.channels == 3 else "L",
            "grey_weights": list(GREY_WEIGHTS) if self.channels == 1 else None,
            "mean": list(self.mean) if self.mean is not None else None,
            "std": list(self.std) if self.std is not None else None,
            "layout": "CHW",
            "dtype": "float32",
            "input_size": [self.channels, *self.size] if self.size else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Preprocessing:
        resize = d.get("resize")
        size = d.get("input_size")
        return cls(
            kind=str(d["kind"]),
            channels=int(d["channels"]),
            size=(int(size[1]), int(size[2])) if size else None,
            resize=None
            if not resize
            else (int(resize["size"]) if resize["mode"] == "shorter_side" else tuple(resize["size"])),
            crop=tuple(d["center_crop"]) if d.get("center_crop") else None,
            interpolation=str((resize or {}).get("interpolation") or "bilinear"),
            mean=tuple(d["mean"]) if d.get("mean") is not None else None,
            std=tuple(d["std"]) if d.get("std") is not None else None,
            scale=float(d.get("scale", SCALE)),
        )

    def at_size(self, h: int, w: int) -> Preprocessing:
        """The same steps for an input of (h, w): an export at another size, a detector's fixed size."""
        if self.kind == "detection":
            return Preprocessing(self.kind, self.channels, (h, w), (h, w), None, self.interpolation)
        if self.size == (h, w):
            return self
        return Preprocessing(
            self.kind,
            self.channels,
            (h, w),
            (h, w),
            None,
            self.interpolation,
            self.mean,
            self.std,
            self.scale,
        )

    def transform(self) -> Callable[[Any], Any]:
        """A decoded uint8 RGB image (3, H, W) -> the float (C, H, W) input these steps make."""
        import torch
        from torchvision.transforms.v2 import functional as F

        from litvision.data.transforms.classification import interpolation

        mode = interpolation(self.interpolation)
        resize = [self.resize] if isinstance(self.resize, int) else list(self.resize or [])
        weights = torch.tensor(GREY_WEIGHTS).view(3, 1, 1)
        mean = torch.tensor(self.mean).view(-1, 1, 1) if self.mean is not None else None
        std = torch.tensor(self.std).view(-1, 1, 1) if self.std is not None else None

        def apply(image: torch.Tensor) -> torch.Tensor:
            if resize:
                image = F.resize(image, resize, interpolation=mode, antialias=True)
            if self.crop:
                image = F.center_crop(image, list(self.crop))
            x = image.to(torch.float32) * self.scale
            if self.channels == 1 and x.shape[0] == 3:
                x = (x * weights).sum(0, keepdim=True)
            if mean is not None:
                x = (x - mean) / std
            return x

        return apply


# -- what a DataModule feeds its model ------------------------------------------------------
def _init_defaults(cls: type) -> dict[str, Any]:
    import inspect

    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is not None:
            for name, p in inspect.signature(init).parameters.items():
                if p.default is not inspect.Parameter.empty:
                    out[name] = p.default
    return out


def for_datamodule(cls: type, hparams: Mapping[str, Any] | None) -> Preprocessing:
    """The eval-time preprocessing of DataModule class `cls` built with `hparams` (its saved
    hyper-parameters: a live `dm.hparams` or a checkpoint's `datamodule_hyper_parameters`)."""
    spec = getattr(cls, "dataset_spec", None)
    hp = {**_init_defaults(cls), **dict(hparams or {})}
    if spec is not None and spec.kind == "detection":
        return Preprocessing("detection", 3, None, None, None)
    if "image_size" in hp and "resize_size" in hp:  # the classification DataModule's eval transform
        side = int(hp.get("image_size") or 224)
        mean = hp.get("mean") if hp.get("mean") is not None else getattr(cls, "default_mean", None)
        std = hp.get("std") if hp.get("std") is not None else getattr(cls, "default_std", None)
        channels = int(hp.get("in_channels") or getattr(cls, "default_in_channels", 3))
        return Preprocessing(
            "classification",
            channels,
            (side, side),
            int(hp.get("resize_size") or side),
            (side, side),
            str(hp.get("resize_interpolation") or "bilinear"),
            tuple(float(v) for v in mean) if mean is not None else None,
            tuple(float(v) for v in std) if std is not None else None,
        )
    # A DataModule of one fixed size without the shared pipeline: any image is resized to it exactly.
    side = getattr(cls, "image_size", None) or (spec.native_size if spec else None)
    if spec is None or not isinstance(side, int):
        raise UserError(
            f"{cls.__module__}.{cls.__name__} does not say how it prepares images (no dataset spec "
            "with a native size); register it with register_dataset (litvision.data.catalog)."
        )
    return Preprocessing(
        "classification", spec.channels, (side, side), (side, side), None, "bilinear", spec.mean, spec.std
    )


def datamodule_class(target: str, where: str) -> type:
    """The DataModule class a checkpoint or config names; only litvision's own are imported."""
    if not str(target).startswith(DATA_TARGET_PREFIX):
        raise UserError(
            f"{where} names {target!r} as its data; litvision prepares images only with its own "
            f"({DATA_TARGET_PREFIX}*) data modules."
        )
    module, _, name = str(target).rpartition(".")
    import litvision.data.moved  # noqa: F401 - old module paths of checkpoints written before the move

    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise UserError(f"{where} names the data module {target!r}, which this litvision lacks.") from None


# -- what a checkpoint records and reads back -------------------------------------------------
def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def checkpoint_fields(net_cfg: Mapping[str, Any], datamodule: Any) -> dict[str, Any]:
    """What a task adds to its checkpoint's `litvision` record: the model's name and weights spec,
    the dataset spec and the resolved preprocessing (plain types: the safe loader reads them)."""
    from litvision.models.registry import describe_net

    out: dict[str, Any] = {"model": None, "weights": None, "dataset": None, "preprocessing": None}
    try:
        entry, weights = describe_net(net_cfg)
        out["model"] = entry.name
        out["weights"] = _plain({k: v for k, v in asdict(weights).items() if k != "class_names"})
    except UserError:  # an unregistered network still trains; it only goes unnamed here
        pass
    if datamodule is not None:
        spec = getattr(type(datamodule), "dataset_spec", None)
        out["dataset"] = _plain(asdict(spec)) if spec is not None else None
        hparams = getattr(datamodule, "hparams", None)
        with contextlib.suppress(UserError):  # a DataModule that cannot say: predict asks for the experiment
            out["preprocessing"] = for_datamodule(type(datamodule), hparams).to_dict()
    return out


def from_checkpoint(
    ckpt: Mapping[str, Any],
    fallback_target: str | None = None,
    where: str = "checkpoint",
    fallback_hparams: Mapping[str, Any] | None = None,
    kind: str | None = None,
) -> Preprocessing:
    """The preprocessing a checkpoint records; for one written before it did, the one its DataModule
    (recorded class, else `fallback_target`: the experiment's data) builds from its saved settings
    (else `fallback_hparams`: the experiment's data settings). `kind`: the task's, as
    litvision.tasks.restore.task_kind tells it."""
    from litvision.utils.safe_load import checkpoint_record

    rec = checkpoint_record(ckpt)
    if isinstance(rec.get("preprocessing"), Mapping):
        return Preprocessing.from_dict(rec["preprocessing"])
    if (kind or rec.get("task")) == "detection":  # a detector takes RGB in [0, 1] and resizes it itself
        return Preprocessing("detection", 3, None, None, None)
    target = rec.get("datamodule") or fallback_target
    if not target:
        raise UserError(
            f"{where} records no preprocessing and no data module; pass the experiment it was "
            "trained with (experiment=<name>)."
        )
    hparams = ckpt.get("datamodule_hyper_parameters")
    return for_datamodule(
        datamodule_class(str(target), where), hparams if isinstance(hparams, Mapping) else None
    )


def describe(pre: Preprocessing) -> str:
    """One line: 28x28 px, 3 channels, resize 28 bilinear, mean/std (...)."""
    size = "x".join(str(v) for v in pre.size) if pre.size else "any size"
    stats = (
        "mean " + "/".join(f"{v:.3g}" for v in pre.mean) + ", std " + "/".join(f"{v:.3g}" for v in pre.std)
        if pre.mean is not None and pre.std is not None
        else "no normalisation"
    )
    return (
        f"{size} px, {pre.channels} channel{'s' if pre.channels != 1 else ''}, {pre.interpolation}, {stats}"
    )
