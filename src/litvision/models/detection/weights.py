"""Pretrained weights for detection models: by torchvision name (cached, offline-aware) or a local file.

Offline (no network here), a name whose file is not in torch's hub cache fails with the
path to put it at and the URL to fetch it from, instead of a long network stack trace.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from litvision.errors import UserError

log = logging.getLogger(__name__)


def is_local_file(weights: Any) -> bool:
    return isinstance(weights, (str, os.PathLike)) and (
        Path(weights).suffix in {".pth", ".pt", ".ckpt", ".bin", ".safetensors"} or os.sep in str(weights)
    )


def resolve_weights(enum_cls: Any, name: str | None, key: str) -> Any:
    """torchvision weights enum member for `name` ("DEFAULT", "COCO_V1", ...), checked to be loadable.

    The file must be in torch's hub cache or downloadable; with LITVISION_OFFLINE=1 (or
    a failed download) a missing file raises a UserError naming the cache path and URL.
    """
    if name is None:
        return None
    try:
        member = enum_cls.verify(name)
    except (ValueError, KeyError, AttributeError):
        choices = ", ".join(["DEFAULT", *enum_cls.__members__])
        raise UserError(
            f"{key}={name!r} is not a known {enum_cls.__name__} name; use one of {choices}, "
            "a local .pth file, or null."
        ) from None
    path = cached_path(member)
    if not path.is_file():
        if os.environ.get("LITVISION_OFFLINE"):
            raise UserError(missing_weights_message(member, key))
        try:
            torch.hub.load_state_dict_from_url(member.url, progress=False, check_hash=True, weights_only=True)
        except Exception as e:  # noqa: BLE001 - any network/hash failure means the same fix for the user
            raise UserError(
                f"{missing_weights_message(member, key)} (download failed: {type(e).__name__})"
            ) from None
    return member


def cached_path(member: Any) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(member.url)


def missing_weights_message(member: Any, key: str) -> str:
    path = cached_path(member)
    return (
        f"{key}: pretrained weights {member} are not at {path} and cannot be downloaded here; fetch them with "
        f"`mkdir -p {path.parent} && curl -L -o {path} {member.url}`, pass a local file ({key}=/path/to.pth), "
        f"or train from scratch with {key}=null."
    )


def read_state_dict(path: str | os.PathLike, key: str = "weights") -> dict[str, torch.Tensor]:
    """A state dict from a .pth/.pt file or a litvision Lightning checkpoint (`net.` prefix removed)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(
            f"{key}: weights file {path} does not exist; pass an existing .pth/.ckpt file or null."
        )
    from litvision.utils.safe_load import load_checkpoint

    obj: Any = load_checkpoint(path)
    if isinstance(obj, Mapping) and "state_dict" in obj:
        obj = obj["state_dict"]
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        obj = obj["model"]  # torchvision references/detection checkpoints
    if not isinstance(obj, Mapping):
        raise UserError(f"{key}: {path} does not hold a state dict (got {type(obj).__name__}).")
    if any(k.startswith("net.") for k in obj):
        obj = {k[4:]: v for k, v in obj.items() if k.startswith("net.")}
    return dict(obj)


def load_matching(
    module: nn.Module, state: Mapping[str, torch.Tensor], skip_prefixes: tuple[str, ...] = (), what: str = ""
) -> dict[str, list[str]]:
    """Load the tensors whose names and shapes match; report missing, unexpected and shape-mismatched keys."""
    own = module.state_dict()
    usable, mismatched, skipped = {}, [], []
    for k, v in state.items():
        if any(k.startswith(p) for p in skip_prefixes):
            skipped.append(k)
        elif k in own and own[k].shape != v.shape:
            mismatched.append(k)
        else:
            usable[k] = v
    result = module.load_state_dict(usable, strict=False)
    report = {
        "missing": list(result.missing_keys),
        "unexpected": list(result.unexpected_keys),
        "shape_mismatch": mismatched,
        "skipped": skipped,
    }
    log.info(
        "loaded %s: %d tensors; missing %d %s, unexpected %d %s, shape mismatch %d %s, skipped %d",
        what or type(module).__name__,
        len(usable) - len(report["unexpected"]),
        len(report["missing"]),
        report["missing"][:5],
        len(report["unexpected"]),
        report["unexpected"][:5],
        len(mismatched),
        mismatched[:5],
        len(skipped),
    )
    return report
