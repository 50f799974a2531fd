"""The Rich progress bar, without a GPU synchronisation at every training step.

Lightning turns each value logged with `self.log(..., prog_bar=True)` into a Python number at the
end of every batch (`.item()` in its logger connector, whether or not a bar is shown), so the CPU
waits for the GPU once per step. For small, fast steps (CIFAR-size models, where the CPU only just
keeps the GPU fed) the GPU then idles while the next step is being launched. The tasks therefore
log their step loss without `prog_bar`, and this bar shows the step metrics named in
`step_metrics`, read from `trainer.callback_metrics` (where Lightning keeps them as tensors) at
most once every `metrics_every_s` seconds and at the end of each epoch.

    callbacks.rich_progress_bar.metrics_every_s=0      # read them at every step (one sync each)

It counts epochs as people do, `Epoch 1/30` to `Epoch 30/30` (Lightning's bar says `Epoch 0/29` to
`Epoch 29/29`), and leaves out Lightning's `v_num` (the logger's version: a W&B id or a number
that says nothing about the run; the run folder is printed at the start and the end).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar
from torch import Tensor


class ProgressBar(RichProgressBar):
    def __init__(
        self, step_metrics: Sequence[str] = ("train/loss",), metrics_every_s: float = 1.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.step_metrics = list(step_metrics)
        self.metrics_every_s = float(metrics_every_s)
        self._shown: dict[str, float] = {}
        self._read_at = -math.inf

    def _read_step_metrics(self, trainer: L.Trainer) -> None:
        self._read_at = time.monotonic()
        values = trainer.callback_metrics
        self._shown = {
            k: float(v.item()) if isinstance(v, Tensor) else float(v)
            for k in self.step_metrics
            if (v := values.get(k)) is not None and (not isinstance(v, Tensor) or v.numel() == 1)
        }

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        if time.monotonic() - self._read_at >= self.metrics_every_s:
            self._read_step_metrics(trainer)
        items.pop("v_num", None)
        return {**items, **self._shown}

    def _get_train_description(self, current_epoch: int) -> str:
        description = f"Epoch {current_epoch + 1}"
        if self.trainer.max_epochs is not None and self.trainer.max_epochs > 0:
            description += f"/{self.trainer.max_epochs}"
        # Padded as Lightning's is: "Validation" and "Epoch N" bars of one width do not flicker.
        return f"{description:{len(self.validation_description)}}"

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._read_at = -math.inf  # the epoch's last values, whatever the clock says
        super().on_train_epoch_end(trainer, pl_module)
