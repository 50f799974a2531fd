"""Test-time augmentation for classifiers: average the softmax over views of each image.

    make train EXP=resnet50_flowers ARGS="test_tta=hflip"     # test with the image and its mirror

`hflip` is the flip TTA of timm's and torchvision's evaluation tools: one forward pass of
the batch and one of its horizontal mirror, probabilities averaged. Do not use it for
data that is not mirror-symmetric in meaning (digits, text).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from litvision.tasks.options import check_tta


def tta_logits(forward: Callable[[Tensor], Tensor], images: Tensor, mode: str | None = "none") -> Tensor:
    """Logits for `images` (N, C, H, W): the model's own with mode none; with hflip the log of the
    mean softmax over the views, so that softmax/argmax/cross-entropy read them as logits."""
    check_tta(mode)
    if mode in (None, "none"):
        return forward(images)
    views = (images, images.flip(-1))
    probs = torch.stack([forward(v).float().softmax(dim=-1) for v in views]).mean(dim=0)
    return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()


def predict_probabilities(
    model: Callable[[Tensor], Tensor], images: Tensor, tta: str | None = "none"
) -> Tensor:
    """Class probabilities (N, num_classes) of a batch of normalised images, with optional TTA.

    The helper predict commands call: `model` is a task or a bare network in eval mode.
    """
    return tta_logits(model, images, tta).softmax(dim=-1)
