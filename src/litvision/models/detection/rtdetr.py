"""RT-DETR (Zhao et al., "DETRs Beat YOLOs on Real-time Object Detection", CVPR 2024, arXiv:2304.08069)
from Hugging Face transformers, behind litvision's detector interface. An optional extra:

    pip install -e ".[detr]"
    litvision train experiment=det_small_shapes model=rtdetr

Conversions happen here, at the boundary: litvision's targets (XYXY pixels, labels 0..C-1) become
transformers' `labels` ({"class_labels", "boxes": normalised cx, cy, w, h}); its outputs (sigmoid
class logits and normalised cx, cy, w, h per query) become XYXY pixel boxes with labels 0..C-1,
decoded as RT-DETR's own post-processing does (top-k over queries x classes, no NMS). The loss is
transformers' (varifocal + L1 + GIoU with Hungarian matching, auxiliary and denoising terms).

From scratch `config` builds `RTDetrConfig(**config)` (transformers' defaults: a ResNet-50-vd
backbone built locally, no download); `pretrained` names a hub checkpoint
(e.g. PekingU/rtdetr_r18vd), downloaded by transformers, its class head resized.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from litvision.errors import UserError
from litvision.models.registry import register_model

INSTALL = 'pip install -e ".[detr]"'


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise UserError(
            f"model=rtdetr needs the optional transformers package: {INSTALL} (or pip install 'transformers>=5')."
        ) from None
    return transformers


@register_model(
    "rtdetr",
    task="detection",
    description=f"RT-DETR from Hugging Face transformers (optional extra: {INSTALL})",
    weights_key="pretrained",
)
class RTDETR(nn.Module):
    def __init__(
        self,
        num_classes: int,
        pretrained: str | None = None,
        config: Mapping[str, Any] | None = None,
        image_size: int = 640,
        score_thresh: float = 0.05,
        detections_per_img: int = 100,
    ) -> None:
        super().__init__()
        tf = _transformers()
        self.num_classes = num_classes
        self.image_size = int(image_size)
        self.score_thresh, self.detections_per_img = score_thresh, detections_per_img
        if pretrained:
            try:
                self.model = tf.RTDetrForObjectDetection.from_pretrained(
                    pretrained, num_labels=num_classes, ignore_mismatched_sizes=True
                )
            except OSError as err:
                raise UserError(
                    f"Could not load model.net.pretrained={pretrained!r} ({err.__class__.__name__}); without "
                    "network, pass a local folder saved by save_pretrained, or train from scratch: "
                    "model.net.pretrained=null."
                ) from None
        else:
            cfg = tf.RTDetrConfig(num_labels=num_classes, **dict(config or {}))
            self.model = tf.RTDetrForObjectDetection(cfg)

    def _prepare(self, images: list[Tensor] | Tensor) -> tuple[Tensor, list[tuple[int, int]]]:
        # RT-DETR's image processor: resize to a square, rescale to [0, 1], no mean/std normalisation.
        s = self.image_size
        sizes = [(int(img.shape[-2]), int(img.shape[-1])) for img in images]
        batch = torch.cat(
            [
                F.interpolate(img[None].float(), size=(s, s), mode="bilinear", align_corners=False)
                for img in images
            ]
        )
        return batch, sizes

    def forward(
        self, images: list[Tensor] | Tensor, targets: list[dict[str, Tensor]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        x, sizes = self._prepare(images)
        if self.training:
            if targets is None:
                raise ValueError("training needs targets")
            labels = []
            for (h, w), t in zip(sizes, targets, strict=True):
                b = t["boxes"].as_subclass(Tensor).float().reshape(-1, 4).to(x.device)
                b = b / torch.tensor([w, h, w, h], dtype=torch.float32, device=x.device)
                cxcywh = torch.stack(
                    [(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]],
                    -1,
                )
                labels.append({"class_labels": t["labels"].to(x.device).long(), "boxes": cxcywh.clamp(0, 1)})
            out = self.model(pixel_values=x, labels=labels)
            return {"loss_detr": out.loss}
        out = self.model(pixel_values=x)
        return self.postprocess(out.logits, out.pred_boxes, sizes)

    @torch.no_grad()
    def postprocess(
        self, logits: Tensor, boxes: Tensor, sizes: list[tuple[int, int]]
    ) -> list[dict[str, Tensor]]:
        """Top-k (query, class) pairs by sigmoid score, as transformers' post_process_object_detection."""
        n, q, c = logits.shape
        scores = logits.sigmoid().flatten(1)
        k = min(self.detections_per_img, q * c)
        top, idx = scores.topk(k, dim=1)
        labels, query = idx % c, idx // c
        results = []
        for i, (h, w) in enumerate(sizes):
            cx, cy, bw, bh = boxes[i, query[i]].unbind(-1)
            xyxy = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], -1)
            xyxy = (xyxy * torch.tensor([w, h, w, h], dtype=xyxy.dtype, device=xyxy.device)).clamp(min=0)
            xyxy = torch.minimum(xyxy, torch.tensor([w, h, w, h], dtype=xyxy.dtype, device=xyxy.device))
            keep = top[i] > self.score_thresh
            results.append({"boxes": xyxy[keep], "scores": top[i][keep], "labels": labels[i][keep]})
        return results
