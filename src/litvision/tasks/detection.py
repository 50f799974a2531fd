"""Object detection: the model's named losses, COCO mAP (torchmetrics) per stage, optimizer/scheduler
from config, and a few images with predicted and true boxes each validation.

Logged per stage: map, map_50, map_75, map_small/medium/large (-1: no objects of that size),
mar_1/10/100, ap/<class> (AP@[.5:.95]), and matched_iou: the mean IoU of the predictions scoring at
least draw_score_thresh with the same-class object they overlap by >= 0.5. At test, COCOeval's
summary goes once to the log file, and the per-class table and PR curves come from the same
evaluation as test/map_50 (see litvision.metrics.detection_report).

The network (`net`, a Hydra config) follows the interface of `litvision.models.detection`:
losses by name in train mode, per-image predictions in eval mode. Batches are
`(list[image], list[target])` from `litvision.data.detection.detection_collate`.

    python -m litvision.train experiment=yolov1_shapes
    DetectionTask.load_from_checkpoint(path)     # rebuilds the net from the checkpoint alone
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from torch import Tensor, nn

from litvision.metrics.detection import compute_map, make_iou_metric, make_map_metric, metric_targets
from litvision.tasks.data_contract import adopt_data_contract
from litvision.tasks.hook_name import DirectHookName
from litvision.tasks.optim import build_param_groups, configure_optimization
from litvision.tasks.options import check_ema_decay
from litvision.tasks.step_logging import step_values_read
from litvision.utils.media import EpochFigure
from litvision.utils.safe_load import PROVENANCE_KEY, plain, provenance


def _split_batch(batch: Any) -> tuple[list[Tensor], list[dict[str, Any]]]:
    """(images, targets) or the padded (images, mask, targets) -> a list of images and the targets."""
    if len(batch) == 3:
        images, mask, targets = batch
        # Unpad: each image's extent is where its mask is False.
        out = []
        for img, m in zip(images, mask, strict=False):
            h = int((~m).any(dim=1).sum())
            w = int((~m).any(dim=0).sum())
            out.append(img[:, :h, :w])
        return out, list(targets)
    images, targets = batch
    return list(images), list(targets)


class DetectionTask(DirectHookName, L.LightningModule):
    def __init__(
        self,
        net: Mapping[str, Any],
        num_classes: int,
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any] | None = None,
        param_groups: Mapping[str, Any] | None = None,
        class_names: Sequence[str] | None = None,
        category_ids: Sequence[int] | None = None,
        class_metrics: bool = True,
        num_log_images: int = 4,
        draw_score_thresh: float = 0.3,
        experiment: str | None = None,
        ema_decay: float | None = None,
    ) -> None:
        super().__init__()
        # Plain containers only (no OmegaConf objects): checkpoints load with weights_only=True.
        class_names, category_ids = plain(class_names), plain(category_ids)
        self.save_hyperparameters(
            {
                "net": plain(net),
                "num_classes": num_classes,
                "optimizer": plain(optimizer),
                "scheduler": plain(scheduler),
                "param_groups": plain(param_groups),
                # class_names are written by on_save_checkpoint: taken from the data at setup, and
                # kept out of the initial hparams that Lightning compares with the DataModule's.
                "category_ids": category_ids,
                "class_metrics": class_metrics,
                "num_log_images": num_log_images,
                "draw_score_thresh": draw_score_thresh,
                # The experiment's name (`${name}`), recorded in every checkpoint (see on_save_checkpoint).
                "experiment": experiment,
                "ema_decay": ema_decay,
            }
        )
        check_ema_decay(ema_decay)
        self.net: nn.Module = instantiate(self.hparams.net)
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        self.category_ids = list(category_ids) if category_ids else None
        self.val_map = make_map_metric(class_metrics)
        self.test_map = make_map_metric(class_metrics)
        self.val_iou = make_iou_metric()
        self.test_iou = make_iou_metric()
        self._shown: list[tuple[Tensor, dict, dict]] = []
        self._shown_figure = EpochFigure("val/detections")
        # Filled at the end of testing: class name -> AP, AP50, precision/recall/F1 at draw_score_thresh.
        self.test_per_class_ap: dict[str, dict[str, Any]] | None = None

    # -- data contract ------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        dm = adopt_data_contract(self)
        ids = getattr(dm, "category_ids", None)
        if ids and len(ids) == self.num_classes:
            self.category_ids = [int(i) for i in ids]

    def configure_callbacks(self) -> list[Any]:
        # EMA of the weights, as for classification (litvision.tasks.ema): validation, test and
        # the checkpoints' state_dict use the average; the raw weights are current_model_state.
        if self.hparams.ema_decay is None:
            return []
        from litvision.tasks.ema import EMA

        return [EMA(self.hparams.ema_decay)]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # predict maps labels back to names and dataset ids without the dataset at hand.
        checkpoint["hyper_parameters"]["class_names"] = list(self.class_names)
        checkpoint["hyper_parameters"]["category_ids"] = self.category_ids
        # Where the checkpoint came from, so that using it with another experiment is refused in one line.
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        checkpoint[PROVENANCE_KEY] = provenance(
            self.hparams.experiment, "detection", self.num_classes, self.hparams.net, dm
        )
        # The model and weights specs, the dataset spec and the preprocessing they gave: what predict,
        # test and export read instead of guessing (litvision.data.preprocessing).
        from litvision.data.preprocessing import checkpoint_fields

        checkpoint[PROVENANCE_KEY].update(checkpoint_fields(self.hparams.net, dm))

    def forward(self, images: list[Tensor]) -> list[dict[str, Tensor]]:
        return self.net(images)

    # -- steps ------------------------------------------------------------------------
    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        images, targets = _split_batch(batch)
        losses = self.net(images, targets)
        loss = torch.stack(list(losses.values())).sum()
        n = len(images)
        # Not prog_bar: a GPU sync per step (see callbacks/progress_bar.py, which shows it); only on
        # the steps whose values are read (tasks/step_logging.py).
        if step_values_read(self):
            self.log("train/loss", loss, batch_size=n)
            self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()}, batch_size=n)
        return loss

    def _eval_step(self, batch: Any, batch_idx: int, stage: str) -> list[dict[str, Tensor]]:
        images, targets = _split_batch(batch)
        preds = self.net(images)
        gts = metric_targets(targets)
        gts = [{k: v.to(self.device) for k, v in t.items()} for t in gts]
        (self.val_map if stage == "val" else self.test_map).update(preds, gts)
        thresh = self.hparams.draw_score_thresh
        confident = [{k: v[p["scores"] >= thresh] for k, v in p.items()} for p in preds]
        # IoU only where a box is truly a box of that object (crowd/difficult ones are ignored).
        kept = [
            {
                "boxes": t["boxes"][t.get("iscrowd", torch.zeros_like(t["labels"])) == 0],
                "labels": t["labels"][t.get("iscrowd", torch.zeros_like(t["labels"])) == 0],
            }
            for t in gts
        ]
        (self.val_iou if stage == "val" else self.test_iou).update(confident, kept)
        if stage == "val" and batch_idx == 0 and self.hparams.num_log_images:
            k = self.hparams.num_log_images
            # Every prediction: the figure draws those above the threshold and names the best score.
            self._shown = [
                (i.detach().cpu(), {kk: v.cpu() for kk, v in g.items()}, {kk: v.cpu() for kk, v in p.items()})
                for i, g, p in zip(images[:k], gts, preds, strict=False)
            ]
        return preds

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step(batch, batch_idx, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step(batch, batch_idx, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> list[dict[str, Tensor]]:
        images = batch[0] if isinstance(batch, (tuple, list)) and len(batch) in (2, 3) else batch
        return self.net(list(images))

    # -- epoch ends ---------------------------------------------------------------------
    def _log_metrics(self, stage: str, res: Mapping[str, Any]) -> None:
        metric = self.val_map if stage == "val" else self.test_map
        iou = self.val_iou if stage == "val" else self.test_iou
        metric.reset()
        out = {
            f"{stage}/{k}": res[k]
            for k in (
                "map",
                "map_50",
                "map_75",
                "map_small",
                "map_medium",
                "map_large",
                "mar_1",
                "mar_10",
                "mar_100",
            )
        }
        if self.hparams.class_metrics and "map_per_class" in res:
            classes = res["classes"].reshape(-1).tolist()
            for cls, ap in zip(classes, res["map_per_class"].reshape(-1).tolist(), strict=False):
                if 0 <= cls < self.num_classes:
                    out[f"{stage}/ap/{self.class_names[cls]}"] = torch.tensor(ap)
        # Mean IoU of the predictions scoring >= draw_score_thresh with the same-class object they
        # overlap by >= 0.5 (how tight the boxes that count are); a bare "iou" said none of that.
        out[f"{stage}/matched_iou"] = iou.compute()["iou"]
        iou.reset()
        main = f"{stage}/map_50"
        self.log(main, out.pop(main).float(), prog_bar=True)
        self.log_dict({k: v.float() for k, v in out.items()})

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val", compute_map(self.val_map))
        if self._shown and not self.trainer.sanity_checking:  # throttled; the last one drawn at fit end
            shown, thresh = self._shown, float(self.hparams.draw_score_thresh)
            self._shown_figure.offer(self.trainer, lambda: detections_figure(shown, self.class_names, thresh))
        self._shown = []

    def on_fit_end(self) -> None:
        self._shown_figure.flush()

    def on_test_epoch_end(self) -> None:
        # One COCOeval for the logged mAP, the per-class table and the PR curves (see detection_report).
        res = compute_map(self.test_map, extended=True)
        self._log_report("test", self.test_map, res)
        self._log_metrics("test", res)

    def _log_report(self, stage: str, metric: Any, res: Mapping[str, Any]) -> None:
        """PR curves, F1 against confidence and the IoU-0.5 confusion matrix as figures (media/ and
        loggers); the per-class AP table in `self.test_per_class_ap` for summary.json."""
        import logging

        from litvision.metrics.detection import coco_summary_lines
        from litvision.metrics.detection_report import (
            confusion_figure,
            detection_report,
            f1_curve_figure,
            metric_states,
            pr_curve_figure,
        )

        if self.trainer.sanity_checking:
            return
        if self.trainer.is_global_zero:
            # COCOeval's printed summary, once per test (never per validation), to the run's log file.
            logging.getLogger(__name__).info("%s COCO summary\n%s", stage, "\n".join(coco_summary_lines(res)))
        # Every rank's detections (a no-op without DDP), as the mAP metric's compute() gathers them.
        with metric.sync_context():
            preds, targets = metric_states(metric)
        report = detection_report(
            preds, targets, self.class_names, float(self.hparams.draw_score_thresh), evaluation=res
        )
        self.test_per_class_ap = report.per_class
        from litvision.utils.media import log_figure

        log_figure(self.trainer, f"{stage}/pr_curve", pr_curve_figure(report))
        log_figure(self.trainer, f"{stage}/f1_curve", f1_curve_figure(report))
        log_figure(self.trainer, f"{stage}/confusion_matrix", confusion_figure(report))

    # -- optimization -------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        return configure_optimization(
            self,
            lambda lr, wd: build_param_groups(
                self.net, lr=lr, weight_decay=wd, groups=self.hparams.param_groups
            ),
        )


# Small images are drawn larger (nearest neighbour) so that "class score" labels and the caption can be read.
MIN_DRAW_WIDTH = 320


def _scaled(img: Tensor, boxes: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
    factor = -(-MIN_DRAW_WIDTH // img.shape[-1])  # ceil
    if factor <= 1:
        return img, [b.float() for b in boxes]
    img = img.repeat_interleave(factor, dim=-1).repeat_interleave(factor, dim=-2)
    return img, [b.float() * factor for b in boxes]


def threshold_caption(num_kept: int, score_thresh: float, best: float | None) -> str:
    """What the drawn predictions are: those scoring >= score_thresh, or why there are none."""
    if num_kept:
        return f"{num_kept} prediction{'s' if num_kept > 1 else ''} scoring >= {score_thresh:g}"
    if best is None:
        return "no prediction at all"
    return f"no prediction above {score_thresh:g}, best {best:.2f}"


def _caption(img: Tensor, text: str) -> Tensor:
    """A strip above the image with `text` in it (uint8 [3,H,W] -> [3,H+h,W])."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=13)
    strip = Image.new("RGB", (img.shape[-1], 18), (255, 255, 255))
    ImageDraw.Draw(strip).text((3, 1), text, fill=(0, 0, 0), font=font)
    top = torch.from_numpy(np.asarray(strip).copy()).permute(2, 0, 1)
    return torch.cat([top, img], dim=1)


def _label_font() -> dict[str, Any]:
    # torchvision's default label font is a fixed ~8 px bitmap whatever font_size says; matplotlib
    # (a dependency) ships DejaVu Sans, which takes a size.
    from pathlib import Path

    import matplotlib

    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    return {"font": str(ttf), "font_size": 12} if ttf.is_file() else {}


def _names(labels: Tensor, class_names: Sequence[str]) -> list[str]:
    return [class_names[int(c)] if 0 <= int(c) < len(class_names) else str(int(c)) for c in labels]


def draw_detections(
    image: Tensor,
    pred: Mapping[str, Tensor],
    class_names: Sequence[str],
    gt: Mapping[str, Tensor] | None = None,
    score_thresh: float | None = None,
    best: float | None = None,
) -> Tensor:
    """uint8 [3,H,W] image with ground truth (green, class name) and predictions (red, "name score").

    With `score_thresh`, `pred` holds the boxes scoring at least that, and a caption above the image
    says so, or, when there are none, "no prediction above 0.3, best 0.16" (`best`: the image's
    highest score). Images narrower than MIN_DRAW_WIDTH are drawn at a whole multiple of their size.
    """
    from torchvision.utils import draw_bounding_boxes

    img = (image.clamp(0, 1) * 255).to(torch.uint8)
    gt_boxes = gt["boxes"] if gt is not None else torch.zeros(0, 4)
    img, (gt_boxes, pred_boxes) = _scaled(img, [gt_boxes, pred["boxes"]])
    if len(gt_boxes):
        img = draw_bounding_boxes(
            img, gt_boxes, labels=_names(gt["labels"], class_names), colors="lime", width=1, **_label_font()
        )
    if len(pred_boxes):
        labels = [
            f"{n} {float(s):.2f}"
            for n, s in zip(_names(pred["labels"], class_names), pred["scores"], strict=True)
        ]
        img = draw_bounding_boxes(img, pred_boxes, labels=labels, colors="red", width=1, **_label_font())
    if score_thresh is not None:
        img = _caption(img, threshold_caption(len(pred_boxes), score_thresh, best))
    return img


def detections_figure(
    shown: Sequence[tuple[Tensor, dict, dict]], class_names: Sequence[str], score_thresh: float = 0.0
) -> Any:
    """A matplotlib figure: one panel per image, true boxes green, predictions scoring at least
    `score_thresh` red; each panel's title says how many, or the best score when none does."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 3.6), squeeze=False)
    for ax, (img, gt, pred) in zip(axes[0], shown, strict=False):
        best = float(pred["scores"].max()) if len(pred["scores"]) else None
        kept = {k: v[pred["scores"] >= score_thresh] for k, v in pred.items()}
        ax.imshow(draw_detections(img, kept, class_names, gt).permute(1, 2, 0).numpy())
        ax.set_title(threshold_caption(len(kept["scores"]), score_thresh, best), fontsize=8)
        ax.set_axis_off()
    fig.suptitle(f"green: ground truth, red: predictions scoring >= {score_thresh:g}")
    fig.tight_layout()
    return fig
