"""The training preprocessing chosen from the pair (model spec, dataset spec): `${preprocessing:<key>}`.

configs/data/base/images.yaml sets `image_size: ${preprocessing:image_size}` (and resize_size, mean,
std, resize_interpolation, train_crop the same way); a data config or an experiment that states a
value overrides it. The choice, first that applies:

1. pretrained weights that describe themselves (torchvision's transforms, timm's pretrained_cfg):
   their crop size, resize, interpolation, mean and std, as torchvision's `Weights.transforms()`
   and timm's `resolve_data_config` give them (torchvision/models/_api.py, timm/data/config.py);
2. a dataset of one native size (CIFAR 32, MNIST 28): that size and the dataset's statistics;
3. a folder of images of any size (`data=image_folder`): the median shorter side of a sample of its
   images, at most 224 (ImageNet's size: larger costs time without a pretrained reason);
then kept inside the sizes the model can learn from (`ModelEntry.input_range`: the small CNN's
2-stage features see nothing of a 224 px image). Under 96 px the train crop is the CIFAR recipe (pad
and crop back) rather than RandomResizedCrop, whose 8% crops of a 28 px digit keep nothing legible.

`explain(cfg)` is the one line `fit` prints when the size was chosen this way.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LARGEST_CHOSEN = 224  # the size of a folder of large photos with no pretrained weights to say otherwise
SMALL = 96  # below it: resize exactly to the size and pad-crop; at or above: the ImageNet recipe
CROP_PCT = 0.875  # ImageNet's eval resize-then-crop ratio (256 -> 224)
SAMPLE = 64  # image headers read to size a folder
GREY = (0.299, 0.587, 0.114)
# The network keys the choice reads; never its size keys (timm's img_size is `${data.image_size}`).
NET_KEYS = (
    "_target_",
    "name",
    "arch",
    "backbone",
    "weights",
    "pretrained",
    "pretrained_file",
    "load_mode",
)

_cache: dict[tuple[Any, ...], dict[str, Any]] = {}
# (side, line) of the last size this resolver chose: the config is resolved before the checks run,
# and only the resolver knows that the size was chosen rather than stated.
_last_choice: list[tuple[int, str]] = []


def _select(node: Any, key: str) -> Any:
    from omegaconf import OmegaConf

    try:
        return OmegaConf.select(node, key, default=None, throw_on_missing=False)
    except Exception:  # noqa: BLE001 - a value that cannot resolve here is "not stated"
        return None


def sample_images(base: Path, limit: int = SAMPLE) -> list[str]:
    """Up to `limit` image files under `base`, spread over its sub-folders (each folder's share taken
    in turn), read without listing the whole folder: a class folder's directory is read only until its
    share is found, so a million-file folder costs a few directory reads, not a million entries and
    stats. The sample is the folder's own listing order, sorted: the same folder gives the same one."""
    import os

    from litvision.data.pipeline.decode import IMG_EXTENSIONS

    def is_image(name: str) -> bool:
        return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMG_EXTENSIONS

    per_folder: list[list[str]] = []
    level, found = [str(base)], 0
    while level and found < limit * 4:
        share = max(1, math.ceil(limit / len(level)))
        below: list[str] = []
        for folder in sorted(level):
            files: list[str] = []
            try:
                with os.scandir(folder) as entries:
                    for e in entries:
                        if e.is_dir(follow_symlinks=False):
                            below.append(e.path)
                        elif is_image(e.name) and e.is_file():
                            files.append(e.path)
                        if len(files) >= share:
                            break  # its share: the rest of a class folder is not read
            except OSError:  # unreadable: the reader's up-front checks name it in one line
                continue
            if files:
                per_folder.append(sorted(files))
                found += len(files)
        level = below
    picked: list[str] = []
    for depth in range(max((len(f) for f in per_folder), default=0)):  # one from each folder in turn
        picked += [files[depth] for files in per_folder if depth < len(files)]
    return sorted(picked[:limit])


def _folder_side(root: str | None) -> tuple[int, int] | None:
    """(median shorter side, images looked at) of a sample of image headers under `root`, or None."""
    if not root:
        return None
    from PIL import Image

    base = Path(str(root)).expanduser()
    try:
        if not base.is_dir():
            return None
    except OSError:  # a name too long, no permission: the up-front path checks name it in one line
        return None
    sides = []
    for path in sample_images(base):
        try:
            with Image.open(path) as im:
                sides.append(min(im.size))
        except Exception:  # noqa: BLE001, S112 - an unreadable file is the reader's to report
            continue
    return (int(statistics.median(sides)), len(sides)) if sides else None


def _dataset_spec(target: str | None) -> Any:
    from litvision.data.catalog import datasets

    return next((s for s in datasets().values() if s.datamodule == target), None)


def choose(net: Mapping[str, Any], target: str | None, root: str | None) -> dict[str, Any]:
    """The preprocessing keys (and `why`, a phrase) for network config `net` on DataModule `target`."""
    key = (tuple(sorted((k, str(v)) for k, v in net.items())), target, root)
    if key in _cache:
        return _cache[key]
    from litvision.errors import UserError
    from litvision.models.registry import describe_net

    try:
        entry, weights = describe_net(net)
    except UserError:
        entry, weights = None, None
    spec = _dataset_spec(target)
    out: dict[str, Any] = {"resize_interpolation": "bilinear", "mean": None, "std": None}
    if weights is not None and weights.input_size and weights.mean is not None:
        side = int(weights.input_size[1])
        crop_pct = weights.crop_pct or CROP_PCT
        out.update(
            image_size=side,
            resize_size=int(weights.resize_size or math.floor(side / crop_pct)),  # timm's floor
            resize_interpolation=weights.interpolation or "bilinear",
            mean=list(weights.mean),
            std=list(weights.std),
            why=f"what the {weights.name} weights of {entry.name} expect",
        )
    else:
        fixed = net.get("img_size")  # timm ViT/Swin: position embeddings made for one input size
        found = _folder_side(root) if (spec is None or spec.native_size is None) and not fixed else None
        if isinstance(fixed, int) and fixed > 0:
            side, why = fixed, f"the network's img_size ({fixed} px)"
        elif spec is not None and spec.native_size:
            side, why = int(spec.native_size), f"the native size of dataset {spec.name}"
        elif found is not None:
            side = min(found[0], LARGEST_CHOSEN)
            why = f"the images in {root} (median shorter side {found[0]} px of {found[1]} looked at"
            why += f", at most {LARGEST_CHOSEN})" if found[0] > LARGEST_CHOSEN else ")"
        else:
            side, why = LARGEST_CHOSEN, "ImageNet's size (nothing says another)"
        low, high = entry.input_range if entry is not None and entry.input_range else (1, 1 << 16)
        if not low <= side <= high:
            side = min(max(side, low), high)
            why += f", kept within the {low}-{high} px model {entry.name} learns from"
        out.update(
            image_size=side,
            resize_size=side if side < SMALL else math.floor(side / CROP_PCT),
            mean=list(spec.mean) if spec is not None and spec.mean else list(IMAGENET_MEAN),
            std=list(spec.std) if spec is not None and spec.std else list(IMAGENET_STD),
            why=why,
        )
    _cache[key] = out
    return out


def _for_root(root: Any) -> dict[str, Any]:
    data = _select(root, "data")
    net_node = _select(root, "model.net")
    net = {k: _select(net_node, k) for k in NET_KEYS} if net_node is not None else {}
    net = {k: v for k, v in net.items() if v is not None}
    # A stated img_size (timm ViT/Swin) fixes the input; the base's `${oc.select:data.image_size}`
    # would come back here, so only a literal counts.
    from omegaconf import DictConfig, OmegaConf

    node = net_node._get_node("img_size", validate_access=False) if isinstance(net_node, DictConfig) else None
    # `in` and `get` would resolve the interpolation (or refuse a struct config's missing key).
    if node is not None and not OmegaConf.is_interpolation(net_node, "img_size"):
        fixed = node._value()
        if isinstance(fixed, int):
            net["img_size"] = fixed
    return choose(net, _select(data, "_target_"), _select(data, "root"))


def resolve(name: str, _root_: Any) -> Any:
    """The `${preprocessing:<name>}` resolver: one chosen value, fitted to what the config states."""
    chosen = _for_root(_root_)
    if name == "image_size":
        line = f"preprocessing: {chosen['image_size']}x{chosen['image_size']} px from {chosen['why']}; "
        _last_choice[:] = [(chosen["image_size"], line + "set data.image_size to choose another.")]
        return chosen["image_size"]
    side = _select(_root_, "data.image_size")
    if name == "resize_size":
        # A stated image_size keeps today's meaning of resize_size null: resize to image_size.
        return chosen["resize_size"] if side == chosen["image_size"] else None
    if name == "train_crop":
        return "random_resized" if isinstance(side, int) and side >= SMALL else "pad"
    if name in ("mean", "std"):
        from omegaconf import ListConfig

        values = chosen[name]
        channels = _select(_root_, "data.in_channels")
        if channels == 1 and len(values) == 3:  # grey data: the luma of the RGB statistics
            values = [round(sum(w * v for w, v in zip(GREY, values, strict=True)), 4)]
        return ListConfig(values)  # OmegaConf.resolve keeps a resolver's list only as a ListConfig
    return chosen[name]


def explain(cfg: Any) -> str | None:
    """The one line saying what size was chosen and why, when the config left it to the choice (and
    was resolved since; the line is handed out once)."""
    from omegaconf import OmegaConf

    if not _last_choice:
        return None
    side, line = _last_choice.pop()
    data = cfg.get("data") if hasattr(cfg, "get") else None
    if data is None or "image_size" not in data:
        return None
    stated = OmegaConf.to_container(data, resolve=False).get("image_size")
    chosen = isinstance(stated, str) and "preprocessing:" in stated
    return line if chosen or stated == side else None


def register() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("preprocessing"):
        OmegaConf.register_new_resolver("preprocessing", resolve)
