"""LeNet-5 (LeCun et al. 1998) for 28x28 MNIST-style digits.

The layer sizes are the paper's (6 and 16 5x5 filters, 120-84 fully connected);
ReLU and max-pooling replace the tanh and trainable subsampling, as every modern
re-implementation does. Padding 2 on the first conv gives MNIST's 28 px the 32 px the
paper fed in, so the flatten is 16 * 5 * 5 = 400.
"""

from __future__ import annotations

from torch import Tensor, nn

from litvision.models.registry import register_model


@register_model(
    "lenet",
    task="classification",
    description="LeNet-5 for 28 px grey digits (MNIST)",
    input_size=(1, 28, 28),
)
class LeNet5(nn.Module):
    head_prefixes = ("head",)

    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28, dropout: float = 0.0
    ) -> None:
        super().__init__()
        pad = 2 if image_size == 28 else 0
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=pad),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            # Any input size >= 28 ends at 5x5, the paper's C5 input.
            nn.AdaptiveMaxPool2d(5),
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )
        self.head = nn.Linear(84, num_classes)
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
