"""Any torchvision classifier by name, its head sized for the data's class count.

    torchvision_classifier("convnext_tiny", num_classes=5)                   # classifier[2]: 768 -> 5
    torchvision_classifier("efficientnet_b0", num_classes=10, in_channels=1) # first conv takes 1 channel
    registry: `torchvision/<arch>`, e.g. build_model("torchvision/mobilenet_v3_small", num_classes=3)

Pretrained weights are torchvision's own names (`weights: IMAGENET1K_V1`, `DEFAULT`) or a file, loaded
by `litvision.models.weights.build_net` (`weights_arch` tells it which enum a name belongs to).
ResNets have their own builder with a CIFAR stem and the classic stacked head (`resnet.py`).
"""

from __future__ import annotations

from torch import nn

from litvision.errors import UserError
from litvision.models.heads import DropoutLinear, _last_linear
from litvision.models.registry import register_model, torchvision_classifiers

# Where torchvision's classifiers keep their last, class-specific layers (ViT's is `heads`).
_HEAD_NAMES = ("fc", "head", "heads", "classifier")


def _first_conv(net: nn.Module) -> tuple[nn.Module, str, nn.Conv2d]:
    name, conv = next((n, m) for n, m in net.named_modules() if isinstance(m, nn.Conv2d))
    parent, _, attr = name.rpartition(".")
    return net.get_submodule(parent) if parent else net, attr, conv


@register_model(
    "torchvision/<classifier>",
    task="classification",
    family="torchvision",
    accepts=lambda arch: arch in torchvision_classifiers(),
    description="any torchvision classifier (torchvision.models.list_models()), new head for num_classes",
    arch_key="arch",
    weights_source="torchvision",
    default_weights="DEFAULT",
)
def torchvision_classifier(
    arch: str, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.0
) -> nn.Module:
    """torchvision's `arch` built without weights, its last Linear replaced for `num_classes`."""
    import torchvision

    if arch not in torchvision_classifiers():
        raise UserError(
            f"model.net.arch={arch!r} is not a torchvision classifier; see `litvision list models` "
            f"(e.g. {', '.join(torchvision_classifiers()[:6])} ...)."
        )
    net = torchvision.models.get_model(arch, weights=None)
    heads = [n for n, _ in net.named_children() if n in _HEAD_NAMES]
    try:
        parent, attr, old = _last_linear(net, heads[-1]) if heads else (None, "", None)
    except ValueError:
        old = None
    if old is None:
        raise UserError(f"model.net.arch={arch!r}: its head has no Linear layer to size for the classes.")
    setattr(parent, attr, DropoutLinear(old.in_features, num_classes, dropout))
    net.head_prefixes = (heads[-1],)
    if in_channels != 3:
        parent, attr, conv = _first_conv(net)
        setattr(
            parent,
            attr,
            nn.Conv2d(
                in_channels,
                conv.out_channels,
                conv.kernel_size,
                conv.stride,
                conv.padding,
                conv.dilation,
                bias=conv.bias is not None,
            ),
        )
    net.num_classes = num_classes
    net.weights_arch = arch
    return net
