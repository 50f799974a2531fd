"""Which part of a network is its classification head, and replacing it for a new class count.

Transfer learning needs to know the head to freeze "the backbone" (everything else), to
drop the head's keys from pretrained weights and to swap in a layer with the new class
count. litvision's models name it in a `head_prefixes` attribute; timm models name it in
their pretrained config (`pretrained_cfg["classifier"]`); torchvision-style models fall
back to a top-level `fc`, `head` or `classifier`.
"""

from __future__ import annotations

from torch import Tensor, nn

_FALLBACK_HEADS = ("fc", "head", "classifier")


class DropoutLinear(nn.Linear):
    """A Linear with dropout on its input, keeping the plain `weight`/`bias` keys of a Linear.

    So a head with dropout still loads and saves like torchvision's `fc`.
    """

    def __init__(self, in_features: int, out_features: int, dropout: float = 0.0) -> None:
        super().__init__(in_features, out_features)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(self.drop(x))


def head_prefixes(net: nn.Module) -> tuple[str, ...]:
    """Parameter-name prefixes of the classification head of `net`."""
    explicit = getattr(net, "head_prefixes", None)
    if explicit:
        return tuple(explicit)
    cfg = getattr(net, "pretrained_cfg", None) or {}
    classifier = cfg.get("classifier") if isinstance(cfg, dict) else None
    if classifier:
        return (classifier,) if isinstance(classifier, str) else tuple(classifier)
    names = [n for n, _ in net.named_children()]
    found = [n for n in names if n in _FALLBACK_HEADS]
    if not found:
        raise ValueError(
            f"cannot tell the head of {type(net).__name__}: give the model a `head_prefixes` attribute "
            f"(its top-level modules are {names})"
        )
    return (found[-1],)


def is_head_param(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _last_linear(net: nn.Module, prefix: str) -> tuple[nn.Module, str, nn.Linear]:
    """(parent module, attribute name, Linear) of the last Linear at or under `prefix`."""
    module = net.get_submodule(prefix)
    if isinstance(module, nn.Linear):
        parent_name, _, attr = prefix.rpartition(".")
        return net.get_submodule(parent_name) if parent_name else net, attr, module
    linears = [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"the head '{prefix}' of {type(net).__name__} has no Linear layer to replace")
    sub, layer = linears[-1]
    parent_name, _, attr = f"{prefix}.{sub}".rpartition(".")
    return net.get_submodule(parent_name), attr, layer


def head_linear_key(net: nn.Module) -> str:
    """State-dict key of the weight of the layer `replace_head` swaps (e.g. `fc.weight`)."""
    prefix = head_prefixes(net)[-1]
    parent, attr, _ = _last_linear(net, prefix)
    parent_path = next(n for n, m in net.named_modules() if m is parent)
    return f"{parent_path}.{attr}.weight" if parent_path else f"{attr}.weight"


def head_out_features(net: nn.Module) -> int:
    return _last_linear(net, head_prefixes(net)[-1])[2].out_features


def replace_head(net: nn.Module, num_classes: int) -> nn.Module:
    """Swap the head's last Linear for a freshly initialised one with `num_classes` outputs."""
    parent, attr, old = _last_linear(net, head_prefixes(net)[-1])
    if isinstance(old, DropoutLinear):
        new: nn.Linear = DropoutLinear(old.in_features, num_classes, old.drop.p)
    else:
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    new = new.to(device=old.weight.device, dtype=old.weight.dtype)
    setattr(parent, attr, new)
    if hasattr(net, "num_classes"):
        net.num_classes = num_classes
    return net
