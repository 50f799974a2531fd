"""torchvision ResNets with the head set up for a new class count.

    resnet("resnet50", num_classes=5)                         # fc replaced: 2048 -> 5 (the default)
    resnet("resnet50", num_classes=5, dropout=0.2)            # dropout before the new fc
    resnet("resnet50", num_classes=5, head="stack")           # classic: ImageNet fc (1000), then
                                                              # ReLU, dropout 0.5, Linear(1000 -> 5)
    resnet("resnet18", num_classes=10, cifar_stem=True)       # 3x3 stem, no max-pool, for 32 px

Pretrained weights are loaded by `litvision.models.weights.build_net` from the config's
`weights:` key (`IMAGENET1K_V2`, a file, a Lightning checkpoint); `weights_arch` tells it
which torchvision weights a name refers to.
"""

from __future__ import annotations

from torch import Tensor, nn

from litvision.errors import UserError
from litvision.models.heads import DropoutLinear
from litvision.models.registry import register_model

HEADS = ("replace", "stack")


class StackedHead(nn.Module):
    """The classic recipe: keep the 1000-way ImageNet classifier and stack a small head on its logits."""

    head_prefixes = ("head",)

    def __init__(self, backbone: nn.Module, in_features: int, num_classes: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(in_features, num_classes))
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))


@register_model(
    "resnet",
    task="classification",
    description="a torchvision ResNet/ResNeXt (model.net.arch) with a CIFAR stem or the classic stacked head",
    arch_key="arch",
    arch="resnet18",
    weights_source="torchvision",
    default_weights="DEFAULT",
    input_size=(3, 224, 224),
)
def resnet(
    arch: str = "resnet18",
    num_classes: int = 1000,
    in_channels: int = 3,
    head: str = "replace",
    dropout: float = 0.0,
    cifar_stem: bool = False,
) -> nn.Module:
    """A torchvision ResNet (any `torchvision.models` resnet/resnext/wide_resnet name)."""
    import torchvision

    if head not in HEADS:
        raise UserError(
            f"model.net.head={head!r}: use 'replace' (new fc) or 'stack' (classic, on the 1000 logits)."
        )
    try:
        net = torchvision.models.get_model(arch, weights=None)
    except ValueError:
        names = [n for n in torchvision.models.list_models() if "res" in n]
        raise UserError(
            f"model.net.arch={arch!r} is not a torchvision model; ResNet-like ones: {', '.join(names)}."
        ) from None
    if cifar_stem:
        # 32 px images lose too much to a 7x7/2 conv and a max-pool; the CIFAR ResNets use 3x3/1.
        net.conv1 = nn.Conv2d(in_channels, net.conv1.out_channels, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, net.conv1.out_channels, 7, stride=2, padding=3, bias=False)

    if head == "stack":
        model: nn.Module = StackedHead(net, net.fc.out_features, num_classes, dropout=dropout or 0.5)
    else:
        net.fc = DropoutLinear(net.fc.in_features, num_classes, dropout)
        net.head_prefixes = ("fc",)
        net.num_classes = num_classes
        model = net
    model.weights_arch = arch
    return model
