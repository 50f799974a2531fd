"""Transfer-learning pieces the classification task and the unfreeze callback share.

- `freeze(net, spec)`: `model.freeze` = none | backbone | [prefixes to keep trainable].
  Frozen parameters get requires_grad=False; `build_param_groups` leaves them out of the optimizer.
- `sync_batchnorm_modes(net)`: a BatchNorm whose parameters are all frozen stays in eval mode,
  so its running statistics keep their pretrained values; Lightning calls `.train()` on the
  whole model every epoch, so the task calls this after each `.train()`.
- `layer_decay_param_groups(net, ...)`: layer-wise lr decay (BEiT / timm) with named groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from litvision.errors import UserError
from litvision.models.heads import head_prefixes, is_head_param


def trainable_prefixes(net: nn.Module, spec: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """The prefixes a `model.freeze` value keeps trainable; None means train everything."""
    if spec is None or spec == "none":
        return None
    if spec == "backbone":
        return head_prefixes(net)
    if isinstance(spec, str):
        raise UserError(
            f"model.freeze={spec!r}: use none, backbone, or a list of module prefixes to keep trainable, "
            "e.g. model.freeze=[fc] or model.freeze=[layer4,fc]."
        )
    return tuple(spec)


def freeze(net: nn.Module, spec: str | Sequence[str] | None) -> list[str]:
    """Apply `model.freeze`; returns the names of the parameters that stay trainable."""
    keep = trainable_prefixes(net, spec)
    if keep is None:
        return [n for n, _ in net.named_parameters()]
    names = [n for n, _ in net.named_parameters()]
    unknown = [p for p in keep if not any(is_head_param(n, (p,)) for n in names)]
    if unknown:
        top = sorted({n.split(".", 1)[0] for n in names})
        raise UserError(
            f"model.freeze lists {unknown}, which match no parameter of {type(net).__name__}; "
            f"its top-level modules are {top}."
        )
    kept = []
    for name, p in net.named_parameters():
        p.requires_grad = is_head_param(name, keep)
        if p.requires_grad:
            kept.append(name)
    sync_batchnorm_modes(net)
    return kept


def sync_batchnorm_modes(net: nn.Module, training: bool | None = None) -> None:
    """Put BatchNorm layers with only frozen parameters in eval mode, and the others in `training`.

    `training` defaults to the module's own mode. BatchNorm layers without affine
    parameters follow the module (there is nothing to tell whether they are frozen).
    """
    training = net.training if training is None else training
    for m in net.modules():
        if isinstance(m, _BatchNorm):
            params = list(m.parameters(recurse=False))
            if params:
                m.train(training and any(p.requires_grad for p in params))


def layer_decay_param_groups(
    net: nn.Module, lr: float, weight_decay: float, layer_decay: float
) -> list[dict[str, Any]]:
    """Layer-wise lr decay: layer i of L gets lr * layer_decay ** (L - 1 - i).

    Layers come from timm's `group_matcher` (embeddings first, then each block, norm and
    head last) or timm's automatic grouping for other models. Groups are named
    "layer_00" (embeddings) ... "head" (the last), each with a "/no_decay" twin for
    biases, norms and the model's `no_weight_decay()` parameters (position embeddings,
    class token).
    """
    from timm.models import group_parameters
    from timm.optim._param_groups import auto_group_layers

    if hasattr(net, "group_matcher"):
        layer_map = group_parameters(net, net.group_matcher(coarse=False), reverse=True)
    else:
        layer_map = auto_group_layers(net)
    last = max(layer_map.values())
    skip = set(net.no_weight_decay()) if hasattr(net, "no_weight_decay") else set()
    groups: dict[str, dict[str, Any]] = {}
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        layer = layer_map.get(name, last)
        base = "head" if layer == last else f"layer_{layer:02d}"
        no_decay = p.ndim <= 1 or name in skip
        gname = f"{base}/no_decay" if no_decay else base
        if gname not in groups:
            groups[gname] = {
                "name": gname,
                "params": [],
                "lr": lr * layer_decay ** (last - layer),
                "weight_decay": 0.0 if no_decay else weight_decay,
            }
        groups[gname]["params"].append(p)
    if not groups:
        raise ValueError("the model has no trainable parameters: check the freeze settings")
    return sorted(groups.values(), key=lambda g: g["lr"])
