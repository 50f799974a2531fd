"""Every model by name: its task kind, its builder, and weights that say what input they expect.

    litvision list models                              # every entry: task, default weights, size, mean/std
    litvision list models torchvision/resnet50         # its weights, each with size, mean/std, classes
    get_model("lenet").target                          # 'litvision.models.classification.lenet.LeNet5'
    build_model("torchvision/convnext_tiny", num_classes=5)
    weights_spec("torchvision/resnet50", "IMAGENET1K_V2").mean     # (0.485, 0.456, 0.406)
    describe_net(cfg.model.net)                        # (entry, weights spec) of a composed config

A model registers itself where it is defined, the way timm's `@register_model` does
(timm/models/_registry.py): `@register_model("lenet", task="classification", ...)` on its class or
factory. torchvision's and timm's models are one delegating entry per family (`torchvision/<arch>`,
`timm/<name>`), resolved when asked for, not one entry per architecture. A weights name describes
itself from its library's own record: torchvision's `Weights.meta` and `transforms()`
(torchvision/models/_api.py) and timm's `pretrained_cfg`; a file says only where it is.

This module imports nothing heavy at import time: the model modules register when first asked for.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from litvision.errors import UserError

TASKS = ("classification", "detection")
# Every module in these packages registers its models when first asked for: a new model is one
# module with its `@register_model` in one of them, and no list to add it to.
PACKAGES = ("litvision.models.classification", "litvision.models.detection")

T = TypeVar("T")


@dataclass(frozen=True)
class WeightsSpec:
    """What a set of weights is and what input it expects.

    source: "torchvision" (ref: the enum member, e.g. ResNet50_Weights.IMAGENET1K_V2), "timm" (ref:
    the Hugging Face id), "file" (ref: the path) or "none" (built from scratch). input_size is
    (channels, height, width); mean/std are None where the data's own statistics apply (no weights,
    or a file) and for detectors, which normalise their [0, 1] input themselves.
    """

    name: str
    source: str
    ref: str = ""
    input_size: tuple[int, int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    interpolation: str | None = None
    resize_size: int | None = None
    crop_pct: float | None = None
    class_names: tuple[str, ...] | None = field(default=None, repr=False)
    url: str | None = None

    @property
    def channels(self) -> int | None:
        return self.input_size[0] if self.input_size else None

    @property
    def num_classes(self) -> int | None:
        return len(self.class_names) if self.class_names else None


@dataclass(frozen=True)
class ModelEntry:
    """A registered model. A family entry (`family` set) stands for every name its `accepts` takes."""

    name: str
    task: str
    target: str
    description: str = ""
    family: str | None = None
    accepts: Callable[[str], bool] | None = None
    arch_key: str | None = None  # the builder argument that names the architecture (arch, name, backbone)
    arch: str | None = None  # that argument's value (its default, or the name a family resolved)
    weights_key: str | None = "weights"  # the config key of the pretrained weights
    weights_source: str | None = None  # how a weights name is looked up: torchvision | timm | None
    default_weights: str | None = None  # what `<weights_key>=DEFAULT` gives
    input_size: tuple[int, int, int] | None = None  # what the net is built for, without weights
    # (smallest, largest) image side the net learns from; None: any (data.pipeline.choose keeps to it)
    input_range: tuple[int, int] | None = None


_REGISTRY: dict[str, ModelEntry] = {}
_loaded = False


def register_model(name: str, task: str, **fields: Any) -> Callable[[T], T]:
    """Register the decorated class or factory as model `name` of kind `task` (see `ModelEntry`)."""
    if task not in TASKS:
        raise ValueError(f"register_model({name!r}): task must be one of {TASKS}, not {task!r}")

    def add(obj: T) -> T:
        target = f"{obj.__module__}.{obj.__qualname__}"  # type: ignore[attr-defined]
        old = _REGISTRY.get(name)
        if old is not None and old.target != target:
            raise ValueError(f"model name {name!r} is registered twice: {old.target} and {target}")
        _REGISTRY[name] = ModelEntry(name=name, task=task, target=target, **fields)
        return obj

    return add


def _load() -> None:
    global _loaded
    if not _loaded:
        for package in PACKAGES:
            for info in pkgutil.iter_modules(importlib.import_module(package).__path__, package + "."):
                importlib.import_module(info.name)
        _loaded = True


def entries() -> list[ModelEntry]:
    """Every registered entry: litvision's own nets first, then the family entries."""
    _load()
    return sorted(_REGISTRY.values(), key=lambda e: (e.family is not None, e.task, e.name))


def get_model(name: str) -> ModelEntry:
    """The entry of `name`: a registered name, or `<family>/<arch>` resolved by its family."""
    _load()
    if name in _REGISTRY:
        return _REGISTRY[name]
    family, _, arch = name.partition("/")
    for entry in _REGISTRY.values():
        if entry.family == family and arch and entry.accepts is not None and entry.accepts(arch):
            return replace(entry, name=name, arch=arch)
    own = [e.name for e in entries() if e.family is None]
    raise UserError(
        f"Unknown model '{name}': use one of {', '.join(own)}, torchvision/<arch> (a torchvision "
        "classifier or detector) or timm/<name> (a timm model); `litvision list models` shows them."
    )


def build_model(name: str, **kwargs: Any) -> Any:
    """Build model `name` with the builder's keyword arguments (a family passes the arch itself)."""
    from hydra.utils import get_object

    entry = get_model(name)
    if entry.family is not None and entry.arch_key:
        kwargs[entry.arch_key] = entry.arch
    return get_object(entry.target)(**kwargs)


def entry_for(net_cfg: Mapping[str, Any]) -> ModelEntry | None:
    """The entry a network config builds (its `_target_`, and its arch for a family), or None."""
    from litvision.models import canonical_target

    _load()
    target = canonical_target(str(net_cfg.get("_target_")))
    if target == f"{__name__}.build_model":
        return get_model(str(net_cfg.get("name")))
    for entry in _REGISTRY.values():
        if entry.target != target:
            continue
        arch = net_cfg.get(entry.arch_key) if entry.arch_key else None
        if entry.family is not None:
            return replace(entry, name=f"{entry.family}/{arch}", arch=str(arch))
        return replace(entry, arch=str(arch)) if arch else entry
    return None


# -- weights that describe themselves ----------------------------------------------------------
def torchvision_classifiers() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def _torchvision_spec(member: Any) -> WeightsSpec:
    """torchvision's own record of weights `member`: its transforms' sizes and statistics, its classes."""
    transform = member.transforms()
    categories = member.meta.get("categories")
    common = {
        "name": member.name,
        "source": "torchvision",
        "ref": f"{type(member).__name__}.{member.name}",
        "class_names": tuple(categories) if categories else None,
        "url": member.url,
    }
    crop = getattr(transform, "crop_size", None)
    if not crop:  # detection: the model resizes and normalises its [0, 1] input itself
        return WeightsSpec(**common)
    return WeightsSpec(
        input_size=(3, int(crop[0]), int(crop[0])),
        mean=tuple(float(v) for v in transform.mean),
        std=tuple(float(v) for v in transform.std),
        interpolation=transform.interpolation.value,
        resize_size=int(transform.resize_size[0]),
        crop_pct=round(int(crop[0]) / int(transform.resize_size[0]), 4),
        **common,
    )


def _timm_spec(name: str) -> WeightsSpec:
    """timm's `pretrained_cfg` of `name` (`arch` or `arch.tag`; the arch's default tag without one)."""
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        raise UserError(
            f"timm has no pretrained weights '{name}'; see timm.list_pretrained('{name.split('.')[0]}*')."
        )
    class_names = cfg.label_names
    if class_names is None:
        try:
            from timm.data import ImageNetInfo, infer_imagenet_subset

            subset = infer_imagenet_subset(cfg)
            class_names = ImageNetInfo(subset).label_descriptions() if subset else None
        except Exception:  # noqa: BLE001 - class names are a description, never a reason to fail
            class_names = None
    return WeightsSpec(
        name=f"{cfg.architecture}.{cfg.tag}" if cfg.tag else str(cfg.architecture),
        source="timm",
        ref=cfg.hf_hub_id or "",
        input_size=tuple(cfg.input_size),  # type: ignore[arg-type]
        mean=tuple(cfg.mean),
        std=tuple(cfg.std),
        interpolation=cfg.interpolation,
        crop_pct=cfg.crop_pct,
        class_names=tuple(class_names) if class_names else None,
        url=cfg.url or None,
    )


def weights_spec(model: str | ModelEntry, weights: str | None = None) -> WeightsSpec:
    """What `weights` (a name its library knows, a file, or None: from scratch) are for `model`."""
    from litvision.models.weights import looks_like_file

    entry = get_model(model) if isinstance(model, str) else model
    if weights in (None, "", False):
        return WeightsSpec(name="none", source="none", input_size=entry.input_size)
    weights = str(weights)
    if looks_like_file(weights):
        return WeightsSpec(
            name=weights.rsplit("/", 1)[-1], source="file", ref=weights, input_size=entry.input_size
        )
    if entry.weights_source == "torchvision" and entry.arch:
        from litvision.models.weights import torchvision_weights

        return _torchvision_spec(torchvision_weights(entry.arch, weights, f"model.net.{entry.weights_key}"))
    if entry.weights_source == "timm" and entry.arch:
        tag = "" if weights in ("True", "true", "DEFAULT") else weights
        return _timm_spec(f"{entry.arch.split('.')[0]}.{tag}" if tag else entry.arch)
    raise UserError(
        f"model {entry.name} takes no weights by name ('{weights}'): pass a .pth/.ckpt/.safetensors file."
    )


def describe_net(net_cfg: Mapping[str, Any]) -> tuple[ModelEntry, WeightsSpec]:
    """(entry, weights spec) of a network config, e.g. a composed `cfg.model.net`."""
    entry = entry_for(net_cfg)
    if entry is None:
        raise UserError(
            f"model.net._target_={net_cfg.get('_target_')!r} is not a registered model; register it with "
            "@register_model (litvision.models.registry) or see `litvision list models`."
        )
    if entry.weights_source == "timm":
        if net_cfg.get("pretrained_file"):
            return entry, replace(
                _timm_spec(str(entry.arch)), source="file", ref=str(net_cfg["pretrained_file"])
            )
        weights = "DEFAULT" if net_cfg.get("pretrained") else None
    else:
        weights = net_cfg.get(entry.weights_key) if entry.weights_key else None
    return entry, weights_spec(entry, weights)


def weights_of(model: str | ModelEntry) -> list[WeightsSpec]:
    """Every weights name `model` can start from (its library's list), each described; [] for none."""
    entry = get_model(model) if isinstance(model, str) else model
    if entry.weights_source == "torchvision" and entry.arch:
        import torchvision

        return [_torchvision_spec(m) for m in torchvision.models.get_model_weights(entry.arch)]
    if entry.weights_source == "timm" and entry.arch:
        import timm

        return [_timm_spec(n) for n in timm.list_pretrained(f"{entry.arch.split('.')[0]}.*")]
    return []


def _fmt(values: tuple[float, ...] | None) -> str:
    return "(" + ", ".join(f"{v:.3g}" for v in values) + ")" if values else ""


def spec_columns(spec: WeightsSpec) -> tuple[str, str]:
    """(input size, mean / std) of a spec as `litvision list models` prints them."""
    size = "x".join(str(v) for v in spec.input_size) if spec.input_size else "any"
    if spec.mean is None:
        stats = "the model's own" if spec.source == "torchvision" else "the data's"
    else:
        stats = f"{_fmt(spec.mean)} / {_fmt(spec.std)}"
    return size, stats


def catalog_rows() -> list[tuple[str, ...]]:
    """(name, task, default weights, input size, mean / std, description) of every entry."""
    rows = []
    for entry in entries():
        if entry.family is not None:
            default = f"{entry.default_weights} (per {entry.arch_key})" if entry.default_weights else "-"
            rows.append((entry.name, entry.task, default, "per weights", "per weights", entry.description))
            continue
        spec = weights_spec(entry, entry.default_weights) if entry.default_weights else weights_spec(entry)
        default = f"{entry.default_weights} = {spec.ref}" if entry.default_weights else "- (from scratch)"
        size, stats = spec_columns(spec)
        if entry.input_size:  # what the net is built for (YOLOv1's backbone weights are 224 px; it takes 448)
            size = "x".join(str(v) for v in entry.input_size)
        rows.append((entry.name, entry.task, default, size, stats, entry.description))
    return rows
