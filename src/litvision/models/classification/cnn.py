"""A small CNN for low-resolution images (8x8 digits up to 32x32 CIFAR)."""

from __future__ import annotations

from torch import Tensor, nn

from litvision.models.registry import register_model


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


@register_model(
    "small_cnn",
    task="classification",
    description="litvision's small CNN for 8-32 px images (the digits default)",
    input_size=(1, 8, 8),
    # Two 3x3 stages and one pool see ~10 px: beyond 64 px the pooled features are texture only.
    input_range=(8, 64),
)
class SmallCNN(nn.Module):
    """Two conv stages (the second after a 2x2 max-pool), average pool, linear head.

    Pooling to a fixed `pool_size` grid makes it independent of input size (1: global
    pooling; 2 keeps a coarse 2x2 layout, which makes frozen features transfer better
    between digit classes); `features` / `head` are named so that transfer-learning
    configs can freeze or re-initialise them.
    """

    head_prefixes = ("head",)

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        width: int = 32,
        dropout: float = 0.1,
        pool_size: int = 1,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn(in_channels, width),
            _conv_bn(width, width),
            nn.MaxPool2d(2),
            _conv_bn(width, 2 * width),
            _conv_bn(2 * width, 2 * width),
            nn.AdaptiveAvgPool2d(pool_size),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * width * pool_size**2, num_classes))
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
