"""A small CNN for low-resolution images (8x8 digits up to 32x32 CIFAR)."""

from __future__ import annotations

from torch import Tensor, nn


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """Two conv stages (the second after a 2x2 max-pool), global average pool, linear head.

    Global pooling makes it independent of input size; `features` / `head` are
    named so that transfer-learning configs can freeze or re-initialise them.
    """

    head_prefixes = ("head",)

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32, dropout: float = 0.1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn(in_channels, width),
            _conv_bn(width, width),
            nn.MaxPool2d(2),
            _conv_bn(width, 2 * width),
            _conv_bn(2 * width, 2 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * width, num_classes))
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
