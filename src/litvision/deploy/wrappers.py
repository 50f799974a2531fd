"""Tensor-in, tensors-out views of litvision's detectors, the signatures exporters can express."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TorchvisionDetectorExport(nn.Module):
    """One image [3, H, W] -> (boxes, scores, labels 0..C-1) of a torchvision detector; scriptable."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        # Scripted torchvision detectors return (losses, detections); eager ones the detections.
        if torch.jit.is_scripting():  # noqa: SIM108 - TorchScript skips only an if-block branch
            out = self.model([image])[1][0]
        else:
            out = self.model([image])[0]
        # torchvision keeps 0 for background; litvision's labels are 0..C-1.
        return out["boxes"], out["scores"], out["labels"] - 1


class DetectorExport(nn.Module):
    """One image [3, H, W] -> (boxes, scores, labels) of a detector with litvision's interface."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out = self.net([image])[0]
        return out["boxes"], out["scores"], out["labels"]


def export_module(net: nn.Module, detection: bool) -> nn.Module:
    """The module an exporter sees: the classifier itself, or a detector behind one of the views above."""
    from litvision.models.detection.torchvision_detectors import TorchvisionDetector

    if not detection:
        return net.eval()
    if isinstance(net, TorchvisionDetector):
        return TorchvisionDetectorExport(net.model).eval()
    return DetectorExport(net).eval()
