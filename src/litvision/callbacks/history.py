"""Every run's learning curve and, for cluster logs, one line per epoch.

- `history.png` in the run folder: train and val loss (log axis) and the monitored metric per
  epoch, the best epoch marked. Redrawn at epoch ends, so a killed run still has it, but at most
  10% of the wall time (utils/media.py Throttle: with 0.3 s epochs, every few epochs), and always
  at the end of fit and when training stops on an error.
- With no progress bar (`trainer.enable_progress_bar=false`, `callbacks.rich_progress_bar=null`:
  what SLURM logs want), one line per epoch on stdout, as it ends:

      epoch 3/30  train/loss 0.2134  val/acc 0.9712 (best)  4.1 s

The train loss is the mean of the epoch's step losses, summed on the device and read once per
epoch (no GPU sync per step). The rows are kept in the checkpoint, so a resumed or extended run
draws its whole history.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only

from litvision.utils.media import Throttle

log = logging.getLogger(__name__)


class EpochHistory(L.Callback):
    def __init__(
        self,
        monitor: str = "val/acc",
        mode: str = "max",
        path: str | None = None,
        epoch_lines: str | bool = "auto",
    ) -> None:
        """`path`: where history.png goes (None: not drawn); `epoch_lines`: "auto" prints them when
        the trainer has no progress bar, true/false always/never."""
        self.monitor = monitor
        self.mode = mode
        self.path = Path(path) if path else None
        self.epoch_lines = epoch_lines
        self.rows: list[dict[str, float]] = []
        self._loss_sum: torch.Tensor | None = None
        self._steps = 0
        self._started = 0.0
        self._throttle = Throttle()

    # -- collecting -----------------------------------------------------------------------------
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._loss_sum, self._steps, self._started = None, 0, time.monotonic()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and loss.numel() == 1:
            loss = loss.detach().float()
            self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss
            self._steps += 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        row = {"epoch": float(trainer.current_epoch + 1), "time_s": time.monotonic() - self._started}
        if self._loss_sum is not None and self._steps:
            row["train/loss"] = float(self._loss_sum.item()) / self._steps  # the epoch's one sync
        for name in ("val/loss", self.monitor):
            v = metrics.get(name)
            if isinstance(v, torch.Tensor) and v.numel() == 1:
                row[name] = float(v.item())
        # A validation that did not run this epoch (check_val_every_n_epoch) leaves no value.
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        if trainer.is_global_zero:
            self._report(trainer, row)

    # -- checkpoint -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(r) for r in self.rows]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = [dict(r) for r in state_dict.get("rows", [])]

    # -- output ---------------------------------------------------------------------------------
    def best_epoch(self) -> float | None:
        scored = [r for r in self.rows if math.isfinite(r.get(self.monitor, math.nan))]
        if not scored:
            return None
        pick = max if self.mode == "max" else min
        return pick(scored, key=lambda r: r[self.monitor])["epoch"]

    def _wants_lines(self, trainer: L.Trainer) -> bool:
        if self.epoch_lines == "auto":
            return trainer.progress_bar_callback is None
        return bool(self.epoch_lines)

    @rank_zero_only
    def _report(self, trainer: L.Trainer, row: dict[str, float]) -> None:
        if self._wants_lines(trainer):
            print(
                epoch_line(row, self.monitor, trainer.max_epochs, row["epoch"] == self.best_epoch()),
                flush=True,
            )
        self._throttle.offer(self._draw)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._throttle.flush()  # only rank zero offers: a no-op on the others

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self.on_fit_end(trainer, pl_module)

    def _draw(self) -> None:
        if self.path is not None:
            try:
                draw_history(self.rows, self.monitor, self.best_epoch(), self.path)
            except OSError as e:  # a full disk must not end the training
                log.warning("history.png not written: %s", e)


def epoch_line(row: dict[str, float], monitor: str, max_epochs: int | None, best: bool) -> str:
    """`epoch 3/30  train/loss 0.2134  val/acc 0.9712 (best)  4.1 s`"""
    total = f"/{max_epochs}" if max_epochs and max_epochs > 0 else ""
    parts = [f"epoch {int(row['epoch'])}{total}"]
    for name in ("train/loss", monitor):
        if name in row:
            parts.append(f"{name} {row[name]:.4f}" + (" (best)" if best and name == monitor else ""))
    parts.append(f"{row['time_s']:.1f} s")
    return "  ".join(parts)


def draw_history(rows: list[dict[str, float]], monitor: str, best: float | None, path: Path) -> None:
    """history.png: loss (train and val, log axis) on the left, the monitored metric on the right."""
    from matplotlib.figure import Figure

    from litvision.utils.plots import save

    fig = Figure(figsize=(10, 4), layout="constrained")
    loss_ax, metric_ax = fig.subplots(1, 2)
    for name, style in (("train/loss", "-o"), ("val/loss", "--o")):
        pts = [(r["epoch"], r[name]) for r in rows if name in r and math.isfinite(r[name])]
        if pts:
            loss_ax.plot(*zip(*pts, strict=True), style, markersize=3, label=name)
    if any(r.get(n, 0) > 0 for r in rows for n in ("train/loss", "val/loss")):
        loss_ax.set_yscale("log")
    loss_ax.set(xlabel="epoch", ylabel="loss (log)", title="loss")
    pts = [(r["epoch"], r[monitor]) for r in rows if monitor in r and math.isfinite(r[monitor])]
    if pts and monitor != "val/loss":
        metric_ax.plot(*zip(*pts, strict=True), "-o", markersize=3, color="tab:green", label=monitor)
    metric_ax.set(xlabel="epoch", ylabel=monitor, title=monitor)
    if best is not None:
        for ax in (loss_ax, metric_ax):
            ax.axvline(best, color="grey", linestyle=":", label=f"best epoch {int(best)}")
    from matplotlib.ticker import MaxNLocator

    for ax in (loss_ax, metric_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs 1, 2, 3: not 1.2, 1.4
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    save(fig, tmp)
    tmp.replace(path)  # a reader never sees half a PNG
