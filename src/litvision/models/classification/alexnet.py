"""AlexNet (Krizhevsky, Sutskever, Hinton, NeurIPS 2012) as the classic CIFAR-10 recipe at 224 px uses it,
and a 32-px variant for quick runs.

`AlexNet` expects 224x224 inputs: conv 11x11/4 pad 1 -> 96, max-pool 3/2; conv 5x5 pad 2
-> 256, max-pool 3/2; conv 3x3 384, 384, 256; max-pool 3/2 -> 256 x 5 x 5 = 6400 features;
FC 4096 -> FC 4096 (ReLU, dropout 0.5 each) -> num_classes. (224 + 2 - 11) // 4 + 1 = 54,
then 26, 12 and 5 after the three pools.

`AlexNet32` keeps the five-conv / three-FC shape for 32x32 CIFAR images: 3x3 convs at
stride 1 and 2x2 pools (32 -> 16 -> 8 -> 4), so it trains in minutes instead of hours.
"""

from __future__ import annotations

from torch import Tensor, nn

from litvision.models.registry import register_model


def _classifier(in_features: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_features, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
    )


@register_model(
    "alexnet",
    task="classification",
    description="AlexNet (2012) at 224 px, the CIFAR-10 recipe's",
    input_size=(3, 224, 224),
)
class AlexNet(nn.Module):
    # `head` is the last, class-specific layer: what transfer learning replaces and trains.
    head_prefixes = ("head",)

    def __init__(
        self, num_classes: int = 10, in_channels: int = 3, hidden: int = 4096, dropout: float = 0.5
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 96, kernel_size=11, stride=4, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(96, 256, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(256, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.classifier = _classifier(256 * 5 * 5, hidden, dropout)
        self.head = nn.Linear(hidden, num_classes)
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.classifier(self.features(x)))


@register_model(
    "alexnet32",
    task="classification",
    description="AlexNet's shape for 32 px CIFAR images",
    input_size=(3, 32, 32),
)
class AlexNet32(nn.Module):
    head_prefixes = ("head",)

    def __init__(
        self, num_classes: int = 10, in_channels: int = 3, hidden: int = 1024, dropout: float = 0.5
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 192, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.classifier = _classifier(256 * 4 * 4, hidden, dropout)
        self.head = nn.Linear(hidden, num_classes)
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.classifier(self.features(x)))
