"""A YOLOv1-style detector on a torchvision ResNet backbone.

Each image is resized to `image_size` squared and split into an S x S grid. Every cell predicts
B boxes (x, y: offset in the cell; w, h: fraction of the image; confidence) and one set of class
scores. A ground-truth box is the job of the cell holding its centre and, in that cell, of the
predictor whose box overlaps it most (the "responsible" predictor).

Loss (per image, averaged over the batch), as in YOLOv1 with a choice of box loss:
    lambda_coord * box_loss(responsible)       smooth_l1 | iou (-ln IoU) | giou | diou | ciou
  + (conf - target)^2 over responsible predictors (target: IoU, as in the paper, or 1)
  + lambda_noobj * conf^2 over the others
  + cross-entropy of the class scores over cells holding an object (YOLOv1 used squared error)

    model = YOLOv1(num_classes=20, backbone="resnet50", weights_backbone="IMAGENET1K_V1", freeze_backbone=True)
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchvision import ops

from litvision.errors import UserError
from litvision.models.registry import register_model
from litvision.models.weights import LoadReport, load_state_dict_into, read_weights

log = logging.getLogger(__name__)

BACKBONES = {
    "resnet18": (torchvision.models.resnet18, torchvision.models.ResNet18_Weights, 512),
    "resnet34": (torchvision.models.resnet34, torchvision.models.ResNet34_Weights, 512),
    "resnet50": (torchvision.models.resnet50, torchvision.models.ResNet50_Weights, 2048),
}
BOX_LOSSES = ("smooth_l1", "iou", "giou", "diou", "ciou")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def box_loss(pred: Tensor, target: Tensor, kind: str, eps: float = 1e-7) -> Tensor:
    """Per-box loss between matched XYXY boxes [N,4] (no reduction). All are 0 for identical boxes."""
    if kind == "smooth_l1":
        return F.smooth_l1_loss(pred, target, reduction="none", beta=1.0).sum(-1)
    if kind == "iou":
        # box_iou is pairwise; the matched pairs are its diagonal.
        iou = ops.box_iou(pred, target).diagonal() if len(pred) else pred.new_zeros(0)
        return -torch.log(iou.clamp(min=eps))
    if kind == "giou":
        return ops.generalized_box_iou_loss(pred, target, reduction="none", eps=eps)
    if kind == "diou":
        return ops.distance_box_iou_loss(pred, target, reduction="none", eps=eps)
    if kind == "ciou":
        return ops.complete_box_iou_loss(pred, target, reduction="none", eps=eps)
    raise UserError(f"model.net.box_loss={kind!r} is not one of {', '.join(BOX_LOSSES)}.")


def _pairwise_iou_same(pred: Tensor, target: Tensor) -> Tensor:
    """IoU of each of K boxes [N,K,4] with its row's box [N,4] -> [N,K]."""
    lt = torch.maximum(pred[..., :2], target[:, None, :2])
    rb = torch.minimum(pred[..., 2:], target[:, None, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_p = (pred[..., 2:] - pred[..., :2]).clamp(min=0).prod(-1)
    area_t = (target[:, 2:] - target[:, :2]).clamp(min=0).prod(-1)[:, None]
    return inter / (area_p + area_t - inter).clamp(min=1e-9)


@register_model(
    "yolov1",
    task="detection",
    description="YOLOv1-style detector on a torchvision ResNet (model.net.backbone)",
    arch_key="backbone",
    arch="resnet50",
    weights_key="weights_backbone",
    weights_source="torchvision",
    default_weights="IMAGENET1K_V1",
    input_size=(3, 448, 448),
)
class YOLOv1(nn.Module):
    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet50",
        weights_backbone: str | None = None,
        freeze_backbone: bool = False,
        backbone_stages: int = 4,
        image_size: int = 448,
        grid_size: int = 7,
        boxes_per_cell: int = 2,
        head_channels: int = 512,
        box_loss: str = "giou",
        lambda_coord: float = 5.0,
        lambda_noobj: float = 0.5,
        conf_target: str = "iou",
        score_thresh: float = 0.05,
        nms_thresh: float = 0.5,
        detections_per_img: int = 100,
    ) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise UserError(f"model.net.backbone={backbone!r} is not one of {', '.join(BACKBONES)}.")
        if box_loss not in BOX_LOSSES:
            raise UserError(f"model.net.box_loss={box_loss!r} is not one of {', '.join(BOX_LOSSES)}.")
        if conf_target not in ("iou", "one"):
            raise UserError(f"model.net.conf_target={conf_target!r} must be 'iou' or 'one'.")
        self.num_classes = num_classes
        self.image_size = int(image_size)
        self.S, self.B = int(grid_size), int(boxes_per_cell)
        self.box_loss_kind = box_loss
        self.lambda_coord, self.lambda_noobj = lambda_coord, lambda_noobj
        self.conf_target = conf_target
        self.score_thresh, self.nms_thresh, self.detections_per_img = (
            score_thresh,
            nms_thresh,
            detections_per_img,
        )
        self.freeze_backbone = freeze_backbone

        if backbone_stages not in (3, 4):
            raise UserError(
                f"model.net.backbone_stages={backbone_stages} must be 3 (stride 16) or 4 (stride 32)."
            )
        builder, weights_enum, feat_channels = BACKBONES[backbone]
        self.backbone = builder(weights=None)
        # Classifier layers are not part of a detector; removing them keeps the state dict honest.
        del self.backbone.fc, self.backbone.avgpool
        self.backbone_stages = backbone_stages
        if backbone_stages == 3:
            # Stride 16 instead of 32: a finer grid for small inputs, and cheaper.
            del self.backbone.layer4
            feat_channels //= 2
        self.load_report: LoadReport | None = None
        if weights_backbone is not None:
            self.load_report = self._load_backbone(weights_backbone, weights_enum)
        if freeze_backbone:
            for p in self.backbone.parameters():
                p.requires_grad_(False)

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.1)
            )

        self.head = nn.Sequential(
            block(feat_channels, head_channels),
            nn.AdaptiveAvgPool2d(self.S),
            block(head_channels, head_channels),
            nn.Conv2d(head_channels, self.B * 5 + num_classes, 1),
        )
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    # -- weights ---------------------------------------------------------------------------
    def _load_backbone(self, weights: str, weights_enum: Any) -> LoadReport:
        """Copy every pretrained ResNet tensor except the classifier (`fc.*`) into the backbone."""
        state, source = read_weights(weights, weights_enum, "model.net.weights_backbone")
        if self.backbone_stages == 3:
            # The stride-16 backbone has no layer4: its tensors are not part of this model.
            state = {k: v for k, v in state.items() if not k.startswith("layer4.")}
        # The ImageNet classifier (`fc`, deleted above) is the head the one loader drops.
        self.backbone.head_prefixes = ("fc",)
        return load_state_dict_into(
            self.backbone, state, mode="drop_head", source=f"YOLOv1 backbone: {source}"
        )

    def train(self, mode: bool = True) -> YOLOv1:
        super().train(mode)
        if self.freeze_backbone:
            # A frozen backbone keeps its ImageNet BatchNorm statistics.
            self.backbone.eval()
        return self

    # -- forward ---------------------------------------------------------------------------
    def _prepare(self, images: list[Tensor] | Tensor) -> tuple[Tensor, Tensor]:
        """Resize each image to the square input size and normalise; returns the batch and (w, h) sizes."""
        size = self.image_size
        batch, sizes = [], []
        for img in images:
            h, w = img.shape[-2:]
            sizes.append((w, h))
            batch.append(
                F.interpolate(img[None].float(), size=(size, size), mode="bilinear", align_corners=False)
            )
        x = (torch.cat(batch) - self.mean) / self.std
        return x, torch.tensor(sizes, dtype=torch.float32, device=x.device)

    def raw(self, x: Tensor) -> Tensor:
        """Network output [N, S, S, B*5 + C] for a normalised batch."""
        b = self.backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        x = b.layer3(b.layer2(b.layer1(x)))
        if self.backbone_stages == 4:
            x = b.layer4(x)
        return self.head(x).permute(0, 2, 3, 1)

    def decode_boxes(self, out: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Output -> boxes [N,S,S,B,4] (XYXY, image fraction), confidences [N,S,S,B], class logits [N,S,S,C]."""
        n, S, B = out.shape[0], self.S, self.B
        box = out[..., : B * 5].reshape(n, S, S, B, 5)
        xy = box[..., :2].sigmoid()
        wh = box[..., 2:4].sigmoid()
        conf = box[..., 4].sigmoid()
        gy, gx = torch.meshgrid(
            torch.arange(S, device=out.device), torch.arange(S, device=out.device), indexing="ij"
        )
        cx = (gx[None, :, :, None] + xy[..., 0]) / S
        cy = (gy[None, :, :, None] + xy[..., 1]) / S
        boxes = torch.stack(
            [cx - wh[..., 0] / 2, cy - wh[..., 1] / 2, cx + wh[..., 0] / 2, cy + wh[..., 1] / 2], -1
        )
        return boxes, conf, out[..., B * 5 :]

    def forward(
        self, images: list[Tensor] | Tensor, targets: list[dict[str, Tensor]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        x, sizes = self._prepare(images)
        out = self.raw(x)
        if self.training:
            if targets is None:
                raise ValueError("training needs targets")
            return self.loss(out, targets, sizes)
        return self.postprocess(out, sizes)

    # -- loss ------------------------------------------------------------------------------
    def build_targets(self, targets: list[dict[str, Tensor]], sizes: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Ground truth on the grid: object mask [N,S,S], boxes [N,S,S,4] (XYXY image fraction), labels [N,S,S].

        A cell holding several centres keeps the largest box (YOLOv1 predicts one object per cell).
        """
        n, S = len(targets), self.S
        device = sizes.device
        obj = torch.zeros(n, S, S, dtype=torch.bool, device=device)
        tboxes = torch.zeros(n, S, S, 4, device=device)
        tlabels = torch.zeros(n, S, S, dtype=torch.long, device=device)
        for i, t in enumerate(targets):
            boxes = t["boxes"].as_subclass(Tensor).float().reshape(-1, 4).to(device)
            if len(boxes) == 0:
                continue
            w, h = sizes[i]
            boxes = (boxes / torch.stack([w, h, w, h])).clamp(0, 1)
            labels = t["labels"].to(device).long()
            area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            order = area.argsort()  # small first, so the largest is written last and wins
            cx = ((boxes[:, 0] + boxes[:, 2]) / 2 * S).long().clamp(0, S - 1)
            cy = ((boxes[:, 1] + boxes[:, 3]) / 2 * S).long().clamp(0, S - 1)
            for j in order.tolist():
                obj[i, cy[j], cx[j]] = True
                tboxes[i, cy[j], cx[j]] = boxes[j]
                tlabels[i, cy[j], cx[j]] = labels[j]
        return obj, tboxes, tlabels

    def loss(self, out: Tensor, targets: list[dict[str, Tensor]], sizes: Tensor) -> dict[str, Tensor]:
        n = out.shape[0]
        boxes, conf, logits = self.decode_boxes(out)
        obj, tboxes, tlabels = self.build_targets(targets, sizes)

        pred_obj = boxes[obj]  # [M, B, 4]
        gt = tboxes[obj]  # [M, 4]
        with torch.no_grad():
            ious = _pairwise_iou_same(pred_obj, gt)  # [M, B]
            best = ious.argmax(-1)
        responsible = torch.zeros_like(conf, dtype=torch.bool)
        cells = obj.nonzero(as_tuple=True)
        responsible[(*cells, best)] = True

        chosen = pred_obj[torch.arange(len(gt), device=out.device), best]
        scale = float(self.S) if self.box_loss_kind == "smooth_l1" else 1.0  # L1 in grid-cell units
        l_box = box_loss(chosen * scale, gt * scale, self.box_loss_kind).sum() / n
        conf_t = (
            ious.gather(1, best[:, None]).squeeze(1)
            if self.conf_target == "iou"
            else torch.ones_like(gt[:, 0])
        )
        l_obj = ((conf[responsible] - conf_t) ** 2).sum() / n
        l_noobj = (conf[~responsible] ** 2).sum() / n
        l_cls = (
            F.cross_entropy(logits[obj], tlabels[obj], reduction="sum") / n if len(gt) else logits.sum() * 0
        )
        return {
            "loss_box": self.lambda_coord * l_box,
            "loss_obj": l_obj,
            "loss_noobj": self.lambda_noobj * l_noobj,
            "loss_cls": l_cls,
        }

    # -- decoding --------------------------------------------------------------------------
    @torch.no_grad()
    def postprocess(self, out: Tensor, sizes: Tensor) -> list[dict[str, Tensor]]:
        boxes, conf, logits = self.decode_boxes(out)
        probs = logits.softmax(-1)
        # Class-specific confidence of each box: Pr(class | object) * confidence.
        scores = conf[..., None] * probs[:, :, :, None, :]  # [N,S,S,B,C]
        n = out.shape[0]
        results = []
        for i in range(n):
            w, h = sizes[i]
            b = boxes[i].reshape(-1, 4) * torch.stack([w, h, w, h])
            b[:, 0::2] = b[:, 0::2].clamp(0, float(w))
            b[:, 1::2] = b[:, 1::2].clamp(0, float(h))
            s = scores[i].reshape(-1, self.num_classes)
            results.append(
                decode_detections(b, s, self.score_thresh, self.nms_thresh, self.detections_per_img)
            )
        return results


def decode_detections(
    boxes: Tensor, scores: Tensor, score_thresh: float, nms_thresh: float = 0.5, topk: int = 100
) -> dict[str, Tensor]:
    """Candidate boxes [K,4] with per-class scores [K,C] -> detections after per-class NMS.

    Every (box, class) pair scoring above `score_thresh` is a candidate; `batched_nms` keeps,
    class by class, the best box and drops those overlapping it by more than `nms_thresh`;
    the `topk` best survivors are returned.
    """
    idx, labels = (scores > score_thresh).nonzero(as_tuple=True)
    cand_boxes, cand_scores = boxes[idx], scores[idx, labels]
    keep = ops.batched_nms(cand_boxes, cand_scores, labels, nms_thresh)[:topk]
    return {"boxes": cand_boxes[keep], "scores": cand_scores[keep], "labels": labels[keep]}
