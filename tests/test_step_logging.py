"""Per-step values are logged only on the steps someone reads (tasks/step_logging.py), and training
accuracy is counted on the device (tasks/classification.py): the logger's rows, the epoch's last
`train/loss` and `train/acc` are what logging every step with a torchmetrics Metric gave."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from conftest import compose_cfg


def _hit_counter() -> type:
    """A callback base that counts, independently of the task, the training images its forward
    classified right in the current epoch (soft Mixup/CutMix labels by their argmax)."""
    from lightning.pytorch.callbacks import Callback

    class HitCounter(Callback):
        def __init__(self) -> None:
            self.hits = self.seen = 0
            self._labels: torch.Tensor | None = None

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self.hits = self.seen = 0
            forward = type(pl_module).forward

            def recording(x):
                out = forward(pl_module, x)
                if trainer.training and self._labels is not None:
                    y = self._labels.argmax(-1) if self._labels.ndim == 2 else self._labels
                    self.hits += int((out.argmax(-1) == y).sum())
                    self.seen += int(y.numel())
                return out

            pl_module.forward = recording

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self._labels = batch[1]

    return HitCounter


def test_step_loss_rows_last_value_and_train_accuracy(tmp_path: Path) -> None:
    """7 batches, log_every_n_steps=3: CSV rows of train/loss at steps 2 and 5 only; at the epoch's
    end callback_metrics holds the 7th batch's loss; train/acc = hits / images of the epoch.
    Catches: the last batch not logged (`is_last_batch` dropped: the epoch ends on step 5's loss), and
    accuracy counting batches instead of images (`seen += 1`)."""

    from litvision.build import build_callbacks, build_datamodule, build_loggers, build_task, build_trainer

    class Record(_hit_counter()):
        def __init__(self) -> None:
            super().__init__()
            self.losses: list[float] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.losses.append(float(outputs["loss"]))

    cfg = compose_cfg(
        ["experiment=digits_cnn", "trainer.max_epochs=1", "++trainer.limit_train_batches=7",
         "++trainer.limit_val_batches=1", "trainer.log_every_n_steps=3", "logger=csv",
         "++trainer.enable_progress_bar=false"],
        tmp_path,
    )  # fmt: skip
    rec = Record()
    dm, task = build_datamodule(cfg), build_task(cfg)
    trainer = build_trainer(cfg, callbacks=[*build_callbacks(cfg), rec], loggers=build_loggers(cfg))
    trainer.fit(task, datamodule=dm)
    assert len(rec.losses) == 7
    assert float(trainer.callback_metrics["train/loss"]) == pytest.approx(rec.losses[-1], rel=1e-6)
    assert float(trainer.callback_metrics["train/acc"]) == pytest.approx(rec.hits / rec.seen, abs=1e-6)
    (metrics,) = Path(trainer.logger.log_dir).glob("metrics.csv")
    rows = list(csv.DictReader(metrics.open()))
    logged = {int(r["step"]): float(r["train/loss"]) for r in rows if r.get("train/loss")}
    assert sorted(logged) == [2, 5]
    assert logged[2] == pytest.approx(rec.losses[2], rel=1e-6)
    assert logged[5] == pytest.approx(rec.losses[5], rel=1e-6)


def test_train_accuracy_per_epoch_counts_images_and_restarts(tmp_path: Path) -> None:
    """Two epochs of 3 batches: each epoch's `train/acc` row is that epoch's hits / images, with
    soft (mixed) labels scored by their arg-max. Breaks if the image count is not reset at the epoch's
    end (epoch 2 divided by both epochs' images) or counts steps instead of images."""

    from litvision.build import build_callbacks, build_datamodule, build_loggers, build_task, build_trainer

    class PerEpoch(_hit_counter()):
        def __init__(self) -> None:
            super().__init__()
            self.acc: list[float] = []

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            # Callbacks' epoch end runs after the module's, which logs train/acc.
            self.acc.append(self.hits / self.seen)

    cfg = compose_cfg(
        ["experiment=digits_cnn", "trainer.max_epochs=2", "++trainer.limit_train_batches=3",
         "++trainer.limit_val_batches=1", "logger=csv", "++trainer.enable_progress_bar=false",
         "data.mixup_alpha=0.2"],
        tmp_path,
    )  # fmt: skip
    rec = PerEpoch()
    dm, task = build_datamodule(cfg), build_task(cfg)
    trainer = build_trainer(cfg, callbacks=[*build_callbacks(cfg), rec], loggers=build_loggers(cfg))
    trainer.fit(task, datamodule=dm)
    (metrics,) = Path(trainer.logger.log_dir).glob("metrics.csv")
    rows = list(csv.DictReader(metrics.open()))
    logged = [float(r["train/acc"]) for r in rows if r.get("train/acc")]
    assert len(rec.acc) == 2 and len(logged) == 2
    assert logged == pytest.approx(rec.acc, abs=1e-6)
