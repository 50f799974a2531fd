"""torchvision's detectors behind litvision's detection interface, heads sized for `num_classes`.

    torchvision_detector("fasterrcnn_resnet50_fpn", num_classes=20, weights="DEFAULT")   # COCO weights, new head
    torchvision_detector("fcos_resnet50_fpn", num_classes=3, weights=None, weights_backbone=None, min_size=256)

Labels: litvision's are 0..C-1 with no background; torchvision's detectors reserve 0 for
background, so the wrapper shifts labels by one on the way in and out and builds C+1 outputs.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models import detection as tvd

from litvision.errors import UserError
from litvision.models.registry import register_model
from litvision.models.weights import (
    fetch_torchvision,
    load_state_dict_into,
    looks_like_file,
    read_state_dict,
    torchvision_weights,
)

log = logging.getLogger(__name__)

# builder name -> (weights enum, backbone weights enum). Names are torchvision's own.
ARCHS: dict[str, tuple[Any, Any]] = {
    "fasterrcnn_resnet50_fpn": (tvd.FasterRCNN_ResNet50_FPN_Weights, torchvision.models.ResNet50_Weights),
    "fasterrcnn_resnet50_fpn_v2": (
        tvd.FasterRCNN_ResNet50_FPN_V2_Weights,
        torchvision.models.ResNet50_Weights,
    ),
    "fasterrcnn_mobilenet_v3_large_fpn": (
        tvd.FasterRCNN_MobileNet_V3_Large_FPN_Weights,
        torchvision.models.MobileNet_V3_Large_Weights,
    ),
    "fasterrcnn_mobilenet_v3_large_320_fpn": (
        tvd.FasterRCNN_MobileNet_V3_Large_320_FPN_Weights,
        torchvision.models.MobileNet_V3_Large_Weights,
    ),
    "retinanet_resnet50_fpn": (tvd.RetinaNet_ResNet50_FPN_Weights, torchvision.models.ResNet50_Weights),
    "retinanet_resnet50_fpn_v2": (tvd.RetinaNet_ResNet50_FPN_V2_Weights, torchvision.models.ResNet50_Weights),
    "fcos_resnet50_fpn": (tvd.FCOS_ResNet50_FPN_Weights, torchvision.models.ResNet50_Weights),
    "ssdlite320_mobilenet_v3_large": (
        tvd.SSDLite320_MobileNet_V3_Large_Weights,
        torchvision.models.MobileNet_V3_Large_Weights,
    ),
}

# torchvision's loss names -> litvision's (logged as train/<name>).
LOSS_NAMES = {
    "loss_classifier": "loss_cls",
    "loss_box_reg": "loss_box",
    "loss_objectness": "loss_rpn_obj",
    "loss_rpn_box_reg": "loss_rpn_box",
    "classification": "loss_cls",
    "bbox_regression": "loss_box",
    "bbox_ctrness": "loss_ctr",
}


def _replace_head(model: nn.Module, arch: str, num_outputs: int) -> None:
    """Swap the class-dependent layers of a model built with COCO's 91 classes for `num_outputs`."""
    if arch.startswith("fasterrcnn"):
        from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

        in_features = model.roi_heads.box_predictor.cls_score.in_features
        model.roi_heads.box_predictor = FastRCNNPredictor(in_features, num_outputs)
    elif arch.startswith("retinanet"):
        from torchvision.models.detection.retinanet import RetinaNetClassificationHead

        old = model.head.classification_head
        in_channels = old.conv[0][0].in_channels
        norm = partial(nn.GroupNorm, 32) if arch.endswith("v2") else None
        model.head.classification_head = RetinaNetClassificationHead(
            in_channels, old.num_anchors, num_outputs, norm_layer=norm
        )
    elif arch.startswith("fcos"):
        from torchvision.models.detection.fcos import FCOSClassificationHead

        old = model.head.classification_head
        in_channels = old.conv[0].in_channels
        model.head.classification_head = FCOSClassificationHead(in_channels, old.num_anchors, num_outputs)
    elif arch.startswith("ssdlite"):
        from torchvision.models.detection import _utils as det_utils
        from torchvision.models.detection.ssdlite import SSDLiteClassificationHead

        in_channels = det_utils.retrieve_out_channels(model.backbone, (320, 320))
        num_anchors = model.anchor_generator.num_anchors_per_location()
        norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
        model.head.classification_head = SSDLiteClassificationHead(
            in_channels, num_anchors, num_outputs, norm
        )
    else:  # pragma: no cover - ARCHS and this function are kept in step
        raise ValueError(arch)


def _resolve(enum: Any, name: str | None, key: str) -> Any:
    """torchvision's weights member `name`, its file checked to be in torch's hub cache (or fetched)."""
    if name is None:
        return None
    member = torchvision_weights(enum, name, key)
    fetch_torchvision(member, key)
    return member


def class_head(arch: str) -> str:
    """The module of a torchvision detector whose outputs depend on the class count."""
    return "roi_heads.box_predictor" if arch.startswith("fasterrcnn") else "head.classification_head"


class TorchvisionDetector(nn.Module):
    """A torchvision detector speaking litvision's labels (0..C-1) and loss names."""

    # The weights loader's replace_head keeps the class head built for num_classes (see models.weights).
    fixed_head = True

    def __init__(self, model: nn.Module, num_classes: int, arch: str = "") -> None:
        super().__init__()
        self.model = model
        self.num_classes = num_classes
        self.head_prefixes = (f"model.{class_head(arch)}",) if arch else ()

    def forward(
        self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        if self.training:
            if targets is None:
                raise ValueError("training needs targets")
            shifted = [
                {"boxes": t["boxes"].as_subclass(Tensor).float(), "labels": t["labels"].long() + 1}
                for t in targets
            ]
            losses = self.model(list(images), shifted)
            return {LOSS_NAMES.get(k, k): v for k, v in losses.items()}
        out = self.model(list(images))
        return [{"boxes": o["boxes"], "scores": o["scores"], "labels": o["labels"] - 1} for o in out]


@register_model(
    "torchvision/<detector>",
    task="detection",
    family="torchvision",
    accepts=lambda arch: arch in ARCHS,
    description="torchvision's box detectors (Faster R-CNN, RetinaNet, FCOS, SSDlite), class head for num_classes",
    arch_key="arch",
    weights_source="torchvision",
    default_weights="DEFAULT",
)
def torchvision_detector(
    arch: str,
    num_classes: int,
    weights: str | None = None,
    weights_backbone: str | None = None,
    trainable_backbone_layers: int | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
    score_thresh: float | None = None,
    nms_thresh: float | None = None,
    detections_per_img: int | None = None,
    load_mode: str = "shape_match",
    **kwargs: Any,
) -> TorchvisionDetector:
    """Build torchvision detector `arch` for `num_classes` foreground classes.

    weights: a torchvision weights name for the whole detector ("DEFAULT", "COCO_V1"; the
    class head is then replaced), a local .pth/.ckpt file (tensors whose names and shapes
    match are loaded; the rest is reported), or None. weights_backbone: an ImageNet weights
    name for the backbone (or None: from scratch). min_size/max_size: the resize the model
    applies (SSDlite: min_size is its fixed square size). load_mode: how a weights file loads
    (`litvision.models.weights`: shape_match, the default, loads every tensor whose name and shape fit).
    """
    if arch not in ARCHS:
        raise UserError(f"model.net.arch={arch!r} is not supported; choose one of {', '.join(ARCHS)}.")
    weights_enum, backbone_enum = ARCHS[arch]
    local_file = weights if weights is not None and looks_like_file(str(weights)) else None
    named = None if local_file else _resolve(weights_enum, weights, "model.net.weights")
    named_backbone = (
        None if named is not None else _resolve(backbone_enum, weights_backbone, "model.net.weights_backbone")
    )
    ssd = arch.startswith("ssdlite")
    extra: dict[str, Any] = dict(kwargs)
    if not ssd:
        extra.update({k: v for k, v in {"min_size": min_size, "max_size": max_size}.items() if v is not None})
    if trainable_backbone_layers is not None:
        extra["trainable_backbone_layers"] = trainable_backbone_layers
    thresholds = {
        "fasterrcnn": {
            "box_score_thresh": score_thresh,
            "box_nms_thresh": nms_thresh,
            "box_detections_per_img": detections_per_img,
        },
        "retinanet": {
            "score_thresh": score_thresh,
            "nms_thresh": nms_thresh,
            "detections_per_img": detections_per_img,
        },
        "fcos": {
            "score_thresh": score_thresh,
            "nms_thresh": nms_thresh,
            "detections_per_img": detections_per_img,
        },
        "ssdlite": {
            "score_thresh": score_thresh,
            "nms_thresh": nms_thresh,
            "detections_per_img": detections_per_img,
        },
    }[arch.split("_")[0].rstrip("0123456789")]
    extra.update({k: v for k, v in thresholds.items() if v is not None})

    builder = getattr(tvd, arch)
    if named is not None:
        model = builder(weights=named, **extra)
        _replace_head(model, arch, num_classes + 1)
    else:
        model = builder(weights=None, weights_backbone=named_backbone, num_classes=num_classes + 1, **extra)
    if ssd and min_size is not None:
        # SSDlite's size is fixed by its builder; a smaller square is much faster on CPU.
        model.transform.fixed_size = (int(min_size), int(min_size))
        model.transform.min_size = (int(min_size),)
        model.transform.max_size = int(min_size)
    detector = TorchvisionDetector(model, num_classes, arch)
    if local_file:
        state = read_state_dict(local_file, "model.net.weights")
        detector.weights_report = load_state_dict_into(
            detector, state, mode=load_mode, source=str(local_file)
        )
    return detector


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["ARCHS", "TorchvisionDetector", "torchvision_detector", "count_parameters", "torch"]
