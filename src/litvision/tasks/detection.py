"""Object detection: the model's named losses, COCO mAP (torchmetrics) and IoU per stage,
optimizer/scheduler from config, and a few images with predicted and true boxes each validation.

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
from litvision.tasks.optim import build_param_groups, configure_optimization
from litvision.tasks.options import check_ema_decay
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


class DetectionTask(L.LightningModule):
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

    def forward(self, images: list[Tensor]) -> list[dict[str, Tensor]]:
        return self.net(images)

    # -- steps ------------------------------------------------------------------------
    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        images, targets = _split_batch(batch)
        losses = self.net(images, targets)
        loss = torch.stack(list(losses.values())).sum()
        n = len(images)
        # Not prog_bar: a GPU sync per step (see callbacks/progress_bar.py, which shows it).
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
            self._shown = [
                (i.detach().cpu(), {kk: v.cpu() for kk, v in g.items()}, {kk: v.cpu() for kk, v in p.items()})
                for i, g, p in zip(images[:k], gts, confident, strict=False)
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
        out[f"{stage}/iou"] = iou.compute()["iou"]
        iou.reset()
        main = f"{stage}/map_50"
        self.log(main, out.pop(main).float(), prog_bar=True)
        self.log_dict({k: v.float() for k, v in out.items()})

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val", compute_map(self.val_map))
        if self._shown and not self.trainer.sanity_checking:
            from litvision.utils.media import log_figure

            log_figure(self.trainer, "val/detections", detections_figure(self._shown, self.class_names))
        self._shown = []

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


def draw_detections(
    image: Tensor,
    pred: Mapping[str, Tensor],
    class_names: Sequence[str],
    gt: Mapping[str, Tensor] | None = None,
) -> Tensor:
    """uint8 [3,H,W] image with ground truth (green) and predictions (red, "name score") drawn on it."""
    from torchvision.utils import draw_bounding_boxes

    img = (image.clamp(0, 1) * 255).to(torch.uint8)
    if gt is not None and len(gt["boxes"]):
        img = draw_bounding_boxes(img, gt["boxes"].float(), colors="lime", width=1)
    if len(pred["boxes"]):
        labels = [
            f"{class_names[int(c)] if int(c) < len(class_names) else int(c)} {float(s):.2f}"
            for c, s in zip(pred["labels"], pred["scores"], strict=False)
        ]
        img = draw_bounding_boxes(img, pred["boxes"].float(), labels=labels, colors="red", width=1)
    return img


def detections_figure(shown: Sequence[tuple[Tensor, dict, dict]], class_names: Sequence[str]) -> Any:
    """A matplotlib figure: one panel per image, true boxes green, predicted red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 3.4), squeeze=False)
    for ax, (img, gt, pred) in zip(axes[0], shown, strict=False):
        ax.imshow(draw_detections(img, pred, class_names, gt).permute(1, 2, 0).numpy())
        ax.set_axis_off()
    fig.suptitle("green: ground truth, red: predictions")
    fig.tight_layout()
    return fig
