"""An FCOS detector on any timm `features_only` backbone, with an FPN neck.

FCOS (Tian, Shen, Chen, He: "FCOS: Fully Convolutional One-Stage Object Detection", ICCV 2019,
arXiv:1904.01355, and its journal version "FCOS: A Simple and Strong Anchor-free Object Detector",
TPAMI 2020, arXiv:2006.09214, whose improvements are used here):
- every location of every pyramid level is a candidate; a location is positive for an object when
  it lies within `center_radius` strides of the object's centre (centre sampling, TPAMI sec. 3.4)
  and inside its box, and the object's largest regression distance falls in the level's size range;
  a location claimed by several objects takes the smallest one;
- the head predicts, per location, C class logits (sigmoid focal loss, Lin et al. 2017), the distances
  (l, t, r, b) to the box's sides in strides (ReLU of a learnt per-level scale: TPAMI's
  "norm_reg_targets"), and centerness sqrt(min(l,r)/max(l,r) * min(t,b)/max(t,b)) (BCE);
- the box loss is GIoU (Rezatofighi et al. 2019, TPAMI's choice) weighted by the centerness target;
- the score of a detection is sqrt(class probability * centerness), then per-class NMS.

The neck is torchvision's FeaturePyramidNetwork (Lin et al. 2017) over the backbone's `out_indices`;
the head's convolutions are shared by all levels, with GroupNorm as in FCOS.

    model = TimmFCOS(num_classes=3, backbone="resnet18", image_size=None)   # from scratch
    model = TimmFCOS(num_classes=3, backbone="convnext_tiny", pretrained=True)  # timm's weights (network)
    model = TimmFCOS(num_classes=3, backbone="resnet18", pretrained_file="resnet18.safetensors")
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision import ops

from litvision.errors import UserError
from litvision.models.detection.yolo import IMAGENET_MEAN, IMAGENET_STD, decode_detections
from litvision.models.registry import register_model
from litvision.models.weights import LoadReport


def _timm_backbone(
    name: str, out_indices: Sequence[int], pretrained: bool, pretrained_file: str | None
) -> tuple[nn.Module, LoadReport | None]:
    """timm's `features_only` network; weights from a file through litvision's one loader, or timm's tag."""
    import timm

    if not timm.is_model(name.split(".", 1)[0]):
        raise UserError(f"model.net.backbone={name!r} is not a timm model; see timm.list_models().")
    kwargs = {"features_only": True, "out_indices": tuple(int(i) for i in out_indices)}
    try:
        net = timm.create_model(name, pretrained=bool(pretrained) and not pretrained_file, **kwargs)
    except (IndexError, ValueError, AssertionError) as err:
        raise UserError(
            f"model.net.out_indices={list(out_indices)} does not fit {name} ({err}); use stages it has, "
            "e.g. [2, 3, 4] for strides 8, 16, 32."
        ) from None
    except Exception as err:
        if not pretrained:
            raise
        raise UserError(
            f"Could not download timm weights for {name!r} ({type(err).__name__}). Without network, pass "
            "a file: model.net.pretrained_file=/path/to/model.safetensors, or train from scratch: "
            "model.net.pretrained=false."
        ) from None
    report = None
    if pretrained_file:
        from litvision.models.weights import load_state_dict_into, read_state_dict

        state = read_state_dict(pretrained_file, "model.net.pretrained_file")
        # The classifier of the source has no place in a feature extractor: shape_match skips it.
        report = load_state_dict_into(
            net, state, mode="shape_match", source=f"FCOS backbone: {pretrained_file}"
        )
    return net, report


class Scale(nn.Module):
    """A learnt scalar per pyramid level: the levels share the regression branch (FCOS sec. 3.2)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


class FCOSHead(nn.Module):
    """Decoupled classification and regression towers shared across levels (conv, GroupNorm, ReLU)."""

    def __init__(
        self, channels: int, num_classes: int, num_convs: int, num_levels: int, prior: float = 0.01
    ) -> None:
        super().__init__()

        def tower() -> nn.Sequential:
            layers: list[nn.Module] = []
            for _ in range(num_convs):
                layers += [
                    nn.Conv2d(channels, channels, 3, padding=1),
                    nn.GroupNorm(min(32, channels // 4), channels),
                    nn.ReLU(),
                ]
            return nn.Sequential(*layers)

        self.cls_tower, self.box_tower = tower(), tower()
        self.cls_logits = nn.Conv2d(channels, num_classes, 3, padding=1)
        self.bbox_pred = nn.Conv2d(channels, 4, 3, padding=1)
        self.centerness = nn.Conv2d(channels, 1, 3, padding=1)
        self.scales = nn.ModuleList(Scale() for _ in range(num_levels))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)
        # Focal loss' prior (RetinaNet sec. 4.1): every location starts as background with p=0.01.
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior) / prior))

    def forward(self, feats: list[Tensor]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        cls, box, ctr = [], [], []
        for feat, scale in zip(feats, self.scales, strict=True):
            c, b = self.cls_tower(feat), self.box_tower(feat)
            cls.append(self.cls_logits(c))
            box.append(F.relu(scale(self.bbox_pred(b))))  # distances in strides, >= 0
            ctr.append(self.centerness(b))  # centerness on the regression branch (TPAMI)
        return cls, box, ctr


def _flat(maps: list[Tensor]) -> Tensor:
    """[N, K, H, W] per level -> [N, sum(H*W), K]."""
    return torch.cat([m.flatten(2).transpose(1, 2) for m in maps], 1)


@register_model(
    "fcos_timm",
    task="detection",
    description="FCOS (anchor-free, FPN, centerness, GIoU + focal loss) on any timm backbone (model.net.backbone)",
    arch_key="backbone",
    arch="resnet18",
    weights_key="pretrained",
    weights_source="timm",
    default_weights="DEFAULT",
)
class TimmFCOS(nn.Module):
    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet18",
        pretrained: bool = False,
        pretrained_file: str | None = None,
        out_indices: Sequence[int] = (2, 3, 4),
        fpn_channels: int = 128,
        head_convs: int = 4,
        image_size: int | None = None,
        size_ranges: Sequence[float] | None = None,
        center_radius: float = 1.5,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        score_thresh: float = 0.05,
        nms_thresh: float = 0.6,
        detections_per_img: int = 100,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.image_size = int(image_size) if image_size else None
        self.center_radius = center_radius
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        self.score_thresh, self.nms_thresh, self.detections_per_img = (
            score_thresh,
            nms_thresh,
            detections_per_img,
        )
        self.backbone, self.load_report = _timm_backbone(backbone, out_indices, pretrained, pretrained_file)
        info = self.backbone.feature_info
        self.strides = [int(r) for r in info.reduction()]
        n = len(self.strides)
        if size_ranges is None:
            # FCOS' ranges (0, 64, 128, 256, 512, inf) for P3-P7: the bound doubles per level.
            size_ranges = [0.0] + [64.0 * 2**i for i in range(n - 1)] + [math.inf]
        if len(size_ranges) != n + 1:
            raise UserError(
                f"model.net.size_ranges needs {n + 1} bounds for {n} levels (strides {self.strides})."
            )
        self.size_ranges = [float(s) for s in size_ranges]
        self.fpn = ops.FeaturePyramidNetwork(list(info.channels()), fpn_channels)
        self.head = FCOSHead(fpn_channels, num_classes, head_convs, n)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    # -- forward ---------------------------------------------------------------------------
    def _prepare(self, images: list[Tensor] | Tensor) -> tuple[Tensor, Tensor]:
        """A normalised batch and each image's (sx, sy) factor from batch pixels to its own pixels.

        With `image_size`, every image is resized to that square; without, images keep their size
        and are padded (bottom/right, so that box coordinates stay valid) to a multiple of the
        largest stride.
        """
        if self.image_size:
            s = self.image_size
            batch, factors = [], []
            for img in images:
                h, w = img.shape[-2:]
                factors.append(torch.stack([w / torch.tensor(float(s)), h / torch.tensor(float(s))]))
                batch.append(
                    F.interpolate(img[None].float(), size=(s, s), mode="bilinear", align_corners=False)
                )
            x = torch.cat(batch)
            return (x - self.mean) / self.std, torch.stack(factors).to(x.device)
        stride = self.strides[-1]
        h = max(int(img.shape[-2]) for img in images)
        w = max(int(img.shape[-1]) for img in images)
        h, w = -(-h // stride) * stride, -(-w // stride) * stride
        padded = [
            F.pad((img.float()[None] - self.mean) / self.std, (0, w - img.shape[-1], 0, h - img.shape[-2]))
            for img in images
        ]
        x = torch.cat(padded)
        return x, torch.ones(len(padded), 2, device=x.device)

    def raw(self, x: Tensor) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        feats = self.backbone(x)
        pyramid = self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))
        return self.head(list(pyramid.values()))

    def locations(self, maps: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Centres of every location in batch pixels [L, 2], their stride [L] and level [L]."""
        points, strides, levels = [], [], []
        for level, (m, stride) in enumerate(zip(maps, self.strides, strict=True)):
            h, w = m.shape[-2:]
            ys = (torch.arange(h, device=m.device, dtype=torch.float32) + 0.5) * stride
            xs = (torch.arange(w, device=m.device, dtype=torch.float32) + 0.5) * stride
            gy, gx = torch.meshgrid(ys, xs, indexing="ij")
            points.append(torch.stack([gx.reshape(-1), gy.reshape(-1)], -1))
            strides.append(torch.full((h * w,), float(stride), device=m.device))
            levels.append(torch.full((h * w,), level, device=m.device, dtype=torch.long))
        return torch.cat(points), torch.cat(strides), torch.cat(levels)

    def forward(
        self, images: list[Tensor] | Tensor, targets: list[dict[str, Tensor]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        x, factors = self._prepare(images)
        cls, box, ctr = self.raw(x)
        points, strides, levels = self.locations(cls)
        if self.training:
            if targets is None:
                raise ValueError("training needs targets")
            return self.loss(
                _flat(cls), _flat(box), _flat(ctr)[..., 0], points, strides, levels, targets, factors
            )
        return self.postprocess(_flat(cls), _flat(box), _flat(ctr)[..., 0], points, strides, factors, images)

    # -- targets and loss ------------------------------------------------------------------
    def assign(
        self, boxes: Tensor, labels: Tensor, points: Tensor, strides: Tensor, levels: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Each location's object index (-1: background) and its box [L, 4], FCOS' rules."""
        L = points.shape[0]
        if len(boxes) == 0:
            return torch.full((L,), -1, dtype=torch.long, device=points.device), points.new_zeros(L, 4)
        px, py = points[:, 0, None], points[:, 1, None]  # [L, 1]
        ltrb = torch.stack([px - boxes[:, 0], py - boxes[:, 1], boxes[:, 2] - px, boxes[:, 3] - py], -1)
        inside_box = ltrb.min(-1).values > 0  # [L, M]
        # Centre sampling: within radius * stride of the box centre (clipped to the box).
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        r = self.center_radius * strides[:, None]
        x0, y0 = torch.maximum(cx - r, boxes[:, 0]), torch.maximum(cy - r, boxes[:, 1])
        x1, y1 = torch.minimum(cx + r, boxes[:, 2]), torch.minimum(cy + r, boxes[:, 3])
        in_centre = (px > x0) & (px < x1) & (py > y0) & (py < y1)
        reach = ltrb.max(-1).values
        ranges = torch.tensor(self.size_ranges, device=points.device)
        lo, hi = ranges[levels][:, None], ranges[levels + 1][:, None]
        ok = inside_box & in_centre & (reach >= lo) & (reach <= hi)
        area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[None].expand(L, -1)
        area = torch.where(ok, area, torch.full_like(area, math.inf))
        best_area, best = area.min(-1)
        matched = torch.where(torch.isinf(best_area), torch.full_like(best, -1), best)
        return matched, boxes[best]

    def loss(
        self,
        cls: Tensor,
        box: Tensor,
        ctr: Tensor,
        points: Tensor,
        strides: Tensor,
        levels: Tensor,
        targets: list[dict[str, Tensor]],
        factors: Tensor,
    ) -> dict[str, Tensor]:
        cls_t = torch.zeros_like(cls)
        pos_boxes, pos_pred, pos_ctr, pos_points, pos_strides = [], [], [], [], []
        for i, t in enumerate(targets):
            boxes = t["boxes"].as_subclass(Tensor).float().reshape(-1, 4).to(cls.device)
            labels = t["labels"].to(cls.device).long()
            if "iscrowd" in t:  # crowd regions / VOC difficult are neither positives nor learnt from
                keep = t["iscrowd"].to(cls.device) == 0
                boxes, labels = boxes[keep], labels[keep]
            boxes = boxes / factors[i].repeat(2)  # to batch pixels
            matched, gt = self.assign(boxes, labels, points, strides, levels)
            pos = matched >= 0
            cls_t[i, pos, labels[matched[pos]]] = 1.0
            pos_boxes.append(gt[pos])
            pos_pred.append(box[i, pos])
            pos_ctr.append(ctr[i, pos])
            pos_points.append(points[pos])
            pos_strides.append(strides[pos])
        gt, pred_d = torch.cat(pos_boxes), torch.cat(pos_pred)
        logit_ctr, p, s = torch.cat(pos_ctr), torch.cat(pos_points), torch.cat(pos_strides)[:, None]
        num_pos = max(float(len(gt)), 1.0)
        l_cls = (
            ops.sigmoid_focal_loss(
                cls, cls_t, alpha=self.focal_alpha, gamma=self.focal_gamma, reduction="sum"
            )
            / num_pos
        )
        if len(gt) == 0:
            zero = (box.sum() + ctr.sum()) * 0
            return {"loss_cls": l_cls, "loss_box": zero, "loss_ctr": zero}
        target_d = torch.stack(
            [p[:, 0] - gt[:, 0], p[:, 1] - gt[:, 1], gt[:, 2] - p[:, 0], gt[:, 3] - p[:, 1]], -1
        )
        lr, tb = target_d[:, 0::2], target_d[:, 1::2]
        ctr_t = torch.sqrt(
            (lr.min(-1).values / lr.max(-1).values) * (tb.min(-1).values / tb.max(-1).values)
        ).clamp(0, 1)
        pred_boxes = torch.cat([p - pred_d[:, :2] * s, p + pred_d[:, 2:] * s], -1)
        giou = ops.generalized_box_iou_loss(pred_boxes, gt, reduction="none")
        # TPAMI: the box loss of each positive is weighted by its centerness target.
        l_box = (giou * ctr_t).sum() / ctr_t.sum().clamp(min=1e-6)
        l_ctr = F.binary_cross_entropy_with_logits(logit_ctr, ctr_t, reduction="sum") / num_pos
        return {"loss_cls": l_cls, "loss_box": l_box, "loss_ctr": l_ctr}

    # -- decoding --------------------------------------------------------------------------
    @torch.no_grad()
    def postprocess(
        self,
        cls: Tensor,
        box: Tensor,
        ctr: Tensor,
        points: Tensor,
        strides: Tensor,
        factors: Tensor,
        images: list[Tensor] | Tensor,
    ) -> list[dict[str, Tensor]]:
        scores = torch.sqrt(cls.sigmoid() * ctr.sigmoid()[..., None])  # [N, L, C]
        s = strides[:, None]
        boxes = torch.cat([points - box[..., :2] * s, points + box[..., 2:] * s], -1)  # [N, L, 4]
        results = []
        for i, img in enumerate(images):
            h, w = img.shape[-2:]
            b = boxes[i] * factors[i].repeat(2)  # to the image's own pixels
            b = torch.stack(
                [b[:, 0].clamp(0, w), b[:, 1].clamp(0, h), b[:, 2].clamp(0, w), b[:, 3].clamp(0, h)], -1
            )
            results.append(
                decode_detections(b, scores[i], self.score_thresh, self.nms_thresh, self.detections_per_img)
            )
        return results
