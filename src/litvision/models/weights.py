"""One loader for pretrained weights: torchvision weight names, local files, Lightning checkpoints.

    build_net({"_target_": "litvision.models.classification.resnet.resnet", "arch": "resnet50", "num_classes": 5,
               "weights": "IMAGENET1K_V2"})                      # torchvision, cached download
    build_net({..., "weights": "runs/digits_cnn/<stamp>/checkpoints/last.ckpt"})   # Lightning ckpt
    load_weights(net, "backbone.pth", mode="shape_match")        # any state dict file

`mode` is one of the three ways users know to load weights into a changed model:
  replace_head  load everything (a head of the source's class count included), then replace
                the head with a freshly initialised one for the model's class count;
  drop_head     the model is built with the new class count; the head's keys are dropped
                and the rest loads with strict=False;
  shape_match   load every tensor whose name and shape match; skip the others.
Whatever the mode, a tensor whose shape does not fit is skipped (never a crash), and the
missing, unexpected and skipped keys are logged and returned in a `LoadReport`.
Prefixes that wrappers add (`net.` of a Lightning checkpoint, `module.` of DDP, `model.`)
are aligned automatically. timm's own pretrained tags go through `timm_model(pretrained=True)`.

It is the one loader for classification and detection alike: the detectors (`torchvision_detector`
with a weights file, YOLOv1's backbone) and timm's `pretrained_file` read their files through
`read_state_dict` and torchvision weights names through `read_weights`, and load them here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from litvision.errors import UserError
from litvision.models.heads import (
    head_linear_key,
    head_out_features,
    head_prefixes,
    is_head_param,
    replace_head,
)

log = logging.getLogger(__name__)

MODES = ("replace_head", "drop_head", "shape_match")
_FILE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors", ".tar")
# Keys under which checkpoints of common trainers keep the model's state dict; EMA weights first, the
# order of timm's own `load_state_dict(use_ema=True)` (timm/models/_helpers.py).
_NESTED_KEYS = (
    "state_dict_ema",
    "model_ema",
    "state_dict",
    "model",
    "model_state_dict",
    "model_state",
    "net",
)


@dataclass
class LoadReport:
    source: str
    mode: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    skipped: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    dropped_head: list[str] = field(default_factory=list)
    prefix_note: str = ""
    head_note: str = ""

    def lines(self, limit: int = 8) -> list[str]:
        def some(keys: list[str]) -> str:
            more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
            return ", ".join(keys[:limit]) + more

        out = [
            f"weights {self.source} [{self.mode}]: loaded {len(self.loaded)} tensors, "
            f"missing {len(self.missing)}, unexpected {len(self.unexpected)}, "
            f"skipped (shape) {len(self.skipped)}, dropped (head) {len(self.dropped_head)}"
        ]
        if self.prefix_note:
            out.append(f"  keys: {self.prefix_note}")
        if self.head_note:
            out.append(f"  head: {self.head_note}")
        if self.missing:
            out.append(f"  missing (left as initialised): {some(self.missing)}")
        if self.unexpected:
            out.append(f"  unexpected (not in the model, ignored): {some(self.unexpected)}")
        if self.skipped:
            shown = [f"{k} {list(s)} -> model {list(d)}" for k, s, d in self.skipped]
            out.append(f"  skipped, shape mismatch: {some(shown)}")
        if self.dropped_head:
            out.append(f"  dropped head keys: {some(self.dropped_head)}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


# -- reading -------------------------------------------------------------------------------
def looks_like_file(weights: str) -> bool:
    return Path(weights).suffix.lower() in _FILE_SUFFIXES or "/" in weights or "\\" in weights


def read_state_dict(path: str | Path, key: str = "model.net.weights") -> dict[str, Tensor]:
    """Tensors of a .pth/.pt/.bin/.safetensors state dict or a Lightning .ckpt (`key`: the config key
    that named the file, for the error message)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(
            f"{key}: weights file {path} does not exist; pass an existing .pth/.ckpt/.safetensors file, "
            f"a torchvision weights name such as IMAGENET1K_V1, or {key}=null."
        )
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path)))
    from litvision.utils.safe_load import load_checkpoint

    # External files are data, never code: the one safe loader refuses pickled payloads.
    return _extract_state_dict(load_checkpoint(path), path)


def _extract_state_dict(obj: Any, path: Path) -> dict[str, Tensor]:
    if isinstance(obj, nn.Module):
        return obj.state_dict()
    if isinstance(obj, Mapping):
        for key in _NESTED_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, Tensor) for v in inner.values()):
                return dict(inner)
        tensors = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
        if tensors:
            return tensors
    raise UserError(f"{path} holds no state dict (a mapping of parameter names to tensors).")


def torchvision_weights(arch_or_enum: Any, name: str, key: str = "model.net.weights") -> Any:
    """torchvision's weights enum member `name` ("DEFAULT", "IMAGENET1K_V2", "ResNet50_Weights.X")
    for a model name (`resnet50`) or a weights enum class."""
    import torchvision

    enum = arch_or_enum
    if isinstance(arch_or_enum, str):
        try:
            enum = torchvision.models.get_model_weights(arch_or_enum)
        except ValueError:
            raise UserError(
                f"{key}={name!r}: '{arch_or_enum}' is not a torchvision model, so its weights cannot be "
                "looked up by name; pass a .pth/.ckpt/.safetensors file."
            ) from None
    try:
        return enum.verify(name.split(".")[-1])
    except (ValueError, KeyError, AttributeError):
        what = arch_or_enum if isinstance(arch_or_enum, str) else enum.__name__
        raise UserError(
            f"{key}={name!r}: unknown weights for {what}; use one of "
            f"{', '.join(['DEFAULT', *enum.__members__])}, a local .pth/.ckpt file, or {key}=null."
        ) from None


def cached_path(member: Any) -> Path:
    """Where torch keeps a torchvision weights file (TORCH_HOME moves it)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(member.url).name


def fetch_torchvision(member: Any, key: str = "model.net.weights") -> Path:
    """The file of torchvision weights `member` in torch's hub cache, downloaded (hash-checked) if it is
    not there yet; offline (LITVISION_OFFLINE=1 or a failed download), one line says where to put it."""
    import os
    import re

    path = cached_path(member)
    if path.is_file():
        return path
    reason = "LITVISION_OFFLINE is set"
    if not os.environ.get("LITVISION_OFFLINE"):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # torchvision names its files <arch>-<sha256 prefix>.pth; torch.hub checks that prefix.
            match = re.search(torch.hub.HASH_REGEX, path.name)
            torch.hub.download_url_to_file(member.url, str(path), match.group(1) if match else None)
            return path
        except Exception as e:  # noqa: BLE001 - offline, proxy, truncated file: the same fix for the user
            first = str(e).splitlines()[0] if str(e) else ""
            reason = f"download failed: {type(e).__name__}{': ' + first if first else ''}"
    raise UserError(
        f"{key}: torchvision weights {member} are not in the torch hub cache ({reason}). Without network, "
        f"download {member.url} elsewhere and place it at {path} (`mkdir -p {path.parent} && curl -L -o {path} "
        f"{member.url}`; TORCH_HOME moves the cache), or pass the file: {key}=/path/to/{path.name}, "
        f"or train from scratch with {key}=null."
    )


def read_weights(
    weights: str | Path, arch: Any = None, key: str = "model.net.weights"
) -> tuple[dict[str, Tensor], str]:
    """(state dict, where it came from) of a weights file, or of a torchvision weights name for `arch`
    (a torchvision model name or weights enum); read once, through the safe loader."""
    weights = str(weights)
    if arch is not None and not looks_like_file(weights) and not Path(weights).exists():
        member = torchvision_weights(arch, weights, key)
        path = fetch_torchvision(member, key)
        what = arch if isinstance(arch, str) else type(member).__name__
        return read_state_dict(path, key), f"torchvision {what} {member.name} ({path})"
    return read_state_dict(weights, key), weights


# -- aligning names ----------------------------------------------------------------------
def _first(key: str) -> str:
    return key.split(".", 1)[0]


def align_prefixes(src: dict[str, Tensor], dst_keys: set[str]) -> tuple[dict[str, Tensor], str]:
    """Strip and/or add one leading module name so that the most source keys exist in the model.

    Handles `net.` (Lightning checkpoints of litvision's task), `module.` (DDP), `model.`,
    and a model that wraps the source network (e.g. `backbone.`).
    """
    strips = [""] + sorted({_first(k) + "." for k in src if "." in k})
    adds = [""] + sorted({_first(k) + "." for k in dst_keys if "." in k})
    best, best_hits, note = src, len(dst_keys.intersection(src)), ""
    for strip in strips:
        stripped = {(k[len(strip) :] if strip and k.startswith(strip) else k): v for k, v in src.items()}
        for add in adds:
            cand = {add + k: v for k, v in stripped.items()} if add else stripped
            hits = len(dst_keys.intersection(cand))
            if hits > best_hits:
                best, best_hits = cand, hits
                note = " and ".join(
                    p for p in (f"stripped '{strip}'" if strip else "", f"added '{add}'" if add else "") if p
                )
    return best, note


# -- loading ----------------------------------------------------------------------------
def load_state_dict_into(
    net: nn.Module, src: Mapping[str, Tensor], mode: str = "replace_head", source: str = "<state dict>"
) -> LoadReport:
    """Load `src` into `net` the `mode` way (see the module doc); never raises on a mismatch."""
    if mode not in MODES:
        raise UserError(
            f"Unknown weights load mode '{mode}': use one of {', '.join(MODES)} (model.net.load_mode)."
        )
    report = LoadReport(source=source, mode=mode)
    src, report.prefix_note = align_prefixes(dict(src), set(net.state_dict()))
    heads = head_prefixes(net) if mode in ("replace_head", "drop_head") else ()
    target_classes = None
    # A detector's class head is built for its class count (and is no single Linear to resize):
    # replace_head keeps that new head and loads everything else, the outcome drop_head gives.
    fixed_head = mode == "replace_head" and getattr(net, "fixed_head", False)
    if mode == "drop_head" or fixed_head:
        report.dropped_head = sorted(k for k in src if is_head_param(k, heads))
        src = {k: v for k, v in src.items() if k not in set(report.dropped_head)}
    elif mode == "replace_head":
        key = head_linear_key(net)
        target_classes = head_out_features(net)
        if key in src and src[key].ndim == 2 and src[key].shape[0] != target_classes:
            # Make the head the source's shape so that everything loads, then swap in the new one.
            replace_head(net, int(src[key].shape[0]))

    dst = net.state_dict()
    fits: dict[str, Tensor] = {}
    for k, v in src.items():
        if k not in dst:
            report.unexpected.append(k)
        elif tuple(v.shape) != tuple(dst[k].shape):
            report.skipped.append((k, tuple(v.shape), tuple(dst[k].shape)))
        else:
            fits[k] = v
    result = net.load_state_dict(fits, strict=False)
    report.loaded = sorted(fits)
    report.missing = sorted(result.missing_keys)
    report.unexpected = sorted(set(report.unexpected) | set(result.unexpected_keys))
    if fixed_head:
        report.head_note = f"kept the new {', '.join(heads)} for {getattr(net, 'num_classes', '?')} classes"
    if target_classes is not None:
        # The source's head scores the source's classes: a new task starts from a fresh one.
        replace_head(net, target_classes)
        layer = key.rsplit(".", 1)[0]
        loaded = f"the source head ({int(src[key].shape[0])} classes)" if key in src else "no source head"
        report.head_note = (
            f"loaded {loaded}, then replaced {layer} with a new one for {target_classes} classes"
        )
    _log_report(report)
    return report


def _log_report(report: LoadReport) -> None:
    """To the run's log file, and to the console (rank zero): what loaded must never be a guess."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only
    from rich.console import Console

    problems = report.missing or report.unexpected or report.skipped
    for line in report.lines():
        (log.warning if problems else log.info)(line)
    if rank_zero_only.rank == 0:
        Console().print(
            "\n".join(report.lines()), style="yellow" if problems else None, markup=False, highlight=False
        )


def load_weights(
    net: nn.Module, weights: str | Path, mode: str = "replace_head", key: str = "model.net.weights"
) -> LoadReport:
    """Load a file, or a torchvision weights name for the model's `weights_arch`, into `net`."""
    src, source = read_weights(weights, getattr(net, "weights_arch", None), key)
    return load_state_dict_into(net, src, mode=mode, source=source)


def build_net(cfg: Mapping[str, Any]) -> nn.Module:
    """Instantiate a network config; its optional `weights` / `load_mode` keys load weights into it.

    Any network config can carry `weights:` (a file, or a torchvision name for models
    built by `litvision.models.classification.resnet.resnet`) without its class knowing about weights.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    cfg = dict(cfg)
    weights = cfg.pop("weights", None)
    mode = cfg.pop("load_mode", "replace_head")
    try:
        net = instantiate(cfg)
    except InstantiationException as e:
        # A UserError from the network's factory must reach the CLI as itself, not wrapped by Hydra.
        if isinstance(e.__cause__, UserError):
            raise e.__cause__ from None
        raise
    if weights:
        net.weights_report = load_weights(net, weights, mode=mode)
    return net


# Keys of a network config that fetch weights from outside; a checkpoint makes them moot.
# Every key, across classification and detection nets, that asks for pretrained weights, and its "off" value.
PRETRAINED_KEYS: dict[str, Any] = {
    "weights": None,
    "weights_backbone": None,
    "pretrained": False,
    "pretrained_file": None,
}


def without_pretrained(net_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The network config with its pretrained-weight keys turned off (same architecture).

    The task saves this in its checkpoints' hyper-parameters and eval uses it: rebuilding
    a trained model must not download (or need) the weights its training started from.
    """
    return {k: PRETRAINED_KEYS.get(k, v) for k, v in dict(net_cfg).items()}


def pretrained_overrides(cfg: Any) -> list[str]:
    """Hydra overrides that turn off pretrained weights in a composed config (offline tests)."""
    net = cfg.model.get("net") or {}
    return [
        f"model.net.{k}={'null' if off is None else 'false'}"
        for k, off in PRETRAINED_KEYS.items()
        if k in net and net[k] not in (None, False)
    ]
