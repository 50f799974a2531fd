"""Image classification: cross-entropy (optional label smoothing), torchmetrics per stage,
optimizer/scheduler from config, confusion matrix images at the end of val and test.

The task builds its network from `net` (a Hydra config with `_target_`), so a
checkpoint alone rebuilds it: `ClassificationTask.load_from_checkpoint(path)`.
`net.weights` loads pretrained weights (see `litvision.models.weights`); `freeze` and
`layer_decay` set up fine-tuning (see `litvision.tasks.finetune`).

Training extras: `ema_decay` keeps an EMA of the weights that validation, test and the
checkpoints' `state_dict` use (`litvision.tasks.ema`); `class_weights` weighs the loss
per class (`litvision.tasks.class_weights`); `test_tta` averages test/predict outputs over
flipped views (`litvision.tasks.tta`). Training batches may carry soft labels (N, K) when the
DataModule mixes them (`litvision.data.transforms.mixing`): the loss takes them as they are, the
training accuracy scores their arg-max.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from litvision.errors import UserError
from litvision.models.weights import build_net, without_pretrained
from litvision.tasks.data_contract import adopt_data_contract
from litvision.tasks.finetune import freeze as apply_freeze
from litvision.tasks.finetune import layer_decay_param_groups, sync_batchnorm_modes
from litvision.tasks.hook_name import DirectHookName
from litvision.tasks.optim import build_param_groups, configure_optimization
from litvision.tasks.options import check_class_weights, check_ema_decay, check_tta
from litvision.tasks.step_logging import step_values_read
from litvision.tasks.tta import tta_logits
from litvision.utils.media import EpochFigure
from litvision.utils.safe_load import PROVENANCE_KEY, plain, provenance

log = logging.getLogger(__name__)


def _eval_metrics(num_classes: int, prefix: str) -> MetricCollection:
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "precision": MulticlassPrecision(num_classes, average="macro"),
            "recall": MulticlassRecall(num_classes, average="macro"),
            "f1": MulticlassF1Score(num_classes, average="macro"),
        },
        prefix=prefix,
    )


class ClassificationTask(DirectHookName, L.LightningModule):
    def __init__(
        self,
        net: Mapping[str, Any],
        num_classes: int,
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any] | None = None,
        param_groups: Mapping[str, Any] | None = None,
        label_smoothing: float = 0.0,
        class_names: list[str] | None = None,
        freeze: str | list[str] | None = None,
        layer_decay: float | None = None,
        experiment: str | None = None,
        ema_decay: float | None = None,
        class_weights: str | list[float] | None = None,
        test_tta: str | None = "none",
    ) -> None:
        super().__init__()
        # Plain containers only (no OmegaConf objects): checkpoints load with weights_only=True.
        net, freeze, class_names = plain(net), plain(freeze), plain(class_names)
        self.save_hyperparameters(
            {
                # Without pretrained-weight keys: rebuilding from a checkpoint must not download them.
                "net": without_pretrained(net),
                "num_classes": num_classes,
                "optimizer": plain(optimizer),
                "scheduler": plain(scheduler),
                "param_groups": plain(param_groups),
                "label_smoothing": label_smoothing,
                # class_names are written by on_save_checkpoint: taken from the data at setup, and
                # kept out of the initial hparams that Lightning compares with the DataModule's.
                "freeze": freeze,
                "layer_decay": layer_decay,
                # The experiment's name (`${name}`), recorded in every checkpoint (see on_save_checkpoint).
                "experiment": experiment,
                "ema_decay": ema_decay,
                "class_weights": plain(class_weights),
                "test_tta": test_tta or "none",
            }
        )
        check_ema_decay(ema_decay)
        check_class_weights(self.hparams.class_weights, num_classes)
        check_tta(test_tta)
        if layer_decay is not None and param_groups:
            raise UserError(
                "model.layer_decay and model.param_groups both set the learning rate per group; "
                "keep one of them (set the other to null)."
            )
        self.net: nn.Module = build_net(net)
        apply_freeze(self.net, self.hparams.freeze)
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        # Training accuracy (micro: hits / images) as a counter of hits on the device and a count of
        # images on the host, not a torchmetrics Metric: its update() validates and reshapes its inputs
        # in Python at every step, the largest per-step cost the task had left (bench step_overhead).
        # The number of images is known on the host (the batch's shape): a device counter for it
        # was one more kernel launch per step. Not saved in checkpoints, as a Metric's state was not.
        self.register_buffer("_train_hits", torch.zeros((), dtype=torch.long), persistent=False)
        # [steps, images] of this epoch; a list, so that counting does not go through
        # nn.Module.__setattr__ at every step.
        self._train_tally = [0, 0]
        self.val_metrics = _eval_metrics(num_classes, "val/")
        self.test_metrics = _eval_metrics(num_classes, "test/")
        self.val_cm = MulticlassConfusionMatrix(num_classes)
        self.test_cm = MulticlassConfusionMatrix(num_classes)
        self._val_cm_figure = EpochFigure("val/confusion_matrix")
        # What the loss weighs each class by ({"mode", "weights", "counts"?}), set at setup; None when off.
        # A plain attribute, not a buffer: the EMA copy of this module is made before setup and must
        # keep the same parameters and buffers.
        self.class_weights_info: dict[str, Any] | None = None
        self._loss_weight: Tensor | None = None

    # -- data contract ------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        dm = adopt_data_contract(self)
        if self.hparams.class_weights is not None and self.class_weights_info is None:
            from litvision.tasks.class_weights import resolve_class_weights

            self.class_weights_info = resolve_class_weights(self.hparams.class_weights, self.num_classes, dm)
            self._loss_weight = torch.tensor(self.class_weights_info["weights"], dtype=torch.float32)
            log.info(
                "class weights (%s): %s", self.class_weights_info["mode"], self.class_weights_info["weights"]
            )

    def configure_callbacks(self) -> list[Any]:
        if self.hparams.ema_decay is None:
            return []
        from litvision.tasks.ema import EMA

        return [EMA(self.hparams.ema_decay)]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["hyper_parameters"]["class_names"] = list(self.class_names)
        # Where the checkpoint came from, so that using it with another experiment is refused in one line.
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        checkpoint[PROVENANCE_KEY] = provenance(
            self.hparams.experiment, "classification", self.num_classes, self.hparams.net, dm
        )
        # The model and weights specs, the dataset spec and the preprocessing they gave: what predict,
        # test and export read instead of guessing (litvision.data.preprocessing).
        from litvision.data.preprocessing import checkpoint_fields

        checkpoint[PROVENANCE_KEY].update(checkpoint_fields(self.hparams.net, dm))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def train(self, mode: bool = True) -> ClassificationTask:
        # Lightning puts the whole model in train mode every epoch; frozen BatchNorm layers
        # must stay in eval mode, or their running statistics drift from the pretrained ones.
        super().train(mode)
        if "net" in self._modules:
            sync_batchnorm_modes(self.net, mode)
        return self

    def _loss(self, logits: Tensor, y: Tensor) -> Tensor:
        # y: class indices (N,) or probabilities (N, K) from MixUp/CutMix; cross_entropy takes both,
        # and applies label smoothing and class weights to either.
        weight = self._loss_weight
        if weight is not None and weight.device != logits.device:
            weight = self._loss_weight = weight.to(logits.device)
        return F.cross_entropy(logits, y, weight=weight, label_smoothing=self.hparams.label_smoothing)

    # -- steps ------------------------------------------------------------------------
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        logits = self(x)
        loss = self._loss(logits, y)
        hard = y.argmax(dim=-1) if y.ndim == 2 else y
        # In place on a local name: `self.x += ...` would also run nn.Module.__setattr__ each step.
        # No host sync: the hits stay on the device until the epoch ends. No torch.no_grad() either:
        # an arg-max has no gradient, so neither the comparison nor its sum is recorded by autograd.
        hits = self._train_hits
        hits += (logits.argmax(dim=-1) == hard).sum()
        tally = self._train_tally
        tally[0] += 1
        tally[1] += hard.numel()
        # Not prog_bar: Lightning would call .item() on it after every step, a GPU sync per step;
        # the progress bar (callbacks/progress_bar.py) shows it, read once a second. Only on the
        # steps whose values are read: self.log is most of the task's per-step cost (step_logging.py).
        if step_values_read(self):
            self.log("train/loss", loss, batch_size=len(hard))
        return loss

    def on_train_epoch_end(self) -> None:
        # Logged once an epoch, not from every step: Lightning's self.log costs about as much CPU
        # time per step as a small network's launches. Under DDP the counts of every rank are summed.
        steps, images = self._train_tally
        if steps:
            reduce = self.trainer.strategy.reduce
            hits = reduce(self._train_hits.clone(), reduce_op="sum")
            seen = reduce(torch.tensor(images, device=hits.device), reduce_op="sum")
            self.log("train/acc", hits.float() / seen.clamp(min=1))
        self._train_hits.zero_()
        self._train_tally = [0, 0]

    def _eval_step(self, batch: tuple[Tensor, Tensor], stage: str) -> None:
        x, y = batch
        logits = tta_logits(self, x, self.hparams.test_tta) if stage == "test" else self(x)
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        cm = self.val_cm if stage == "val" else self.test_cm
        metrics.update(logits, y)
        cm.update(logits, y)
        self.log(f"{stage}/loss", self._loss(logits, y), prog_bar=stage == "val", batch_size=y.numel())
        self.log_dict(metrics, prog_bar=False, batch_size=y.numel())

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return tta_logits(self, x, self.hparams.test_tta).softmax(dim=-1)

    # -- confusion matrices -------------------------------------------------------------
    def _log_confusion(self, stage: str) -> None:
        cm = self.val_cm if stage == "val" else self.test_cm
        matrix = cm.compute()
        cm.reset()
        if self.trainer.sanity_checking:
            return
        from litvision.utils.media import log_figure
        from litvision.utils.plots import confusion_matrix_figure

        make = lambda: confusion_matrix_figure(matrix, self.class_names)  # noqa: E731
        if stage == "val":  # every epoch: throttled, the last one drawn at the end of fit
            self._val_cm_figure.offer(self.trainer, make)
        else:
            log_figure(self.trainer, f"{stage}/confusion_matrix", make())

    def on_validation_epoch_end(self) -> None:
        self._log_confusion("val")

    def on_fit_end(self) -> None:
        self._val_cm_figure.flush()

    def on_test_epoch_end(self) -> None:
        self._log_confusion("test")

    # -- optimization -------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        def groups(lr: float, wd: float) -> list[dict[str, Any]]:
            if self.hparams.layer_decay is not None:
                return layer_decay_param_groups(self.net, lr, wd, self.hparams.layer_decay)
            return build_param_groups(self.net, lr=lr, weight_decay=wd, groups=self.hparams.param_groups)

        return configure_optimization(self, groups)
