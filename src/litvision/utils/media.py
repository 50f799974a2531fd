"""Send figures to every logger that takes images, and keep the latest as a PNG in the run folder;
per-epoch figures go through a Throttle (EpochFigure) so that drawing never dominates a run."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def log_figure(trainer: Any, tag: str, figure: Any) -> None:
    """Log a matplotlib figure under `tag` (e.g. "val/confusion_matrix") on rank zero, then close it."""
    import matplotlib.pyplot as plt

    if not trainer.is_global_zero:
        plt.close(figure)
        return
    step = trainer.global_step
    for logger in trainer.loggers:
        kind = type(logger).__name__
        if kind == "TensorBoardLogger":
            logger.experiment.add_figure(tag, figure, global_step=step, close=False)
        elif kind == "WandbLogger":
            import wandb

            logger.experiment.log({tag: wandb.Image(figure), "trainer/global_step": step})
        elif callable(getattr(logger, "log_figure", None)):  # litvision's MLFlowLogger: an artifact
            logger.log_figure(tag, figure, step)
    if trainer.default_root_dir and not getattr(trainer, "fast_dev_run", False):
        out = Path(trainer.default_root_dir) / "media" / (tag.replace("/", "_") + ".png")
        out.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(figure)


# What share of a run's wall time per-epoch figures may take. A 30-epoch digits_cnn run spent half
# its 26 s in matplotlib (history.png and the val confusion matrix redrawn every 0.3 s epoch); with
# long epochs (real data) every epoch is still drawn.
PLOT_TIME_SHARE = 0.1


class Throttle:
    """Runs a costly side job (drawing a figure) only when it is due: when the time since the last
    one ended is at least (1 / share - 1) times what that one took, so such jobs take at most `share`
    of the wall time. The first one is always due. A job offered when it is not due is kept, and
    `flush` runs the last one kept (at the end of fit: the last epoch is always drawn)."""

    def __init__(self, share: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.share = PLOT_TIME_SHARE if share is None else share
        self.clock = clock
        self._next = -math.inf
        self._pending: Callable[[], Any] | None = None

    def due(self) -> bool:
        return self.clock() >= self._next

    def timed(self, job: Callable[[], Any]) -> Any:
        """Run `job` and plan the next due time from what it took."""
        started = self.clock()
        try:
            return job()
        finally:
            ended = self.clock()
            self._next = ended + (ended - started) * (1 / self.share - 1)

    def offer(self, job: Callable[[], Any]) -> None:
        """Run `job` now if due, else keep it (replacing any job kept before) for `flush`."""
        if self.due():
            self._pending = None
            self.timed(job)
        else:
            self._pending = job

    def flush(self) -> None:
        if self._pending is not None:
            job, self._pending = self._pending, None
            self.timed(job)


class EpochFigure:
    """A figure logged at the end of validation epochs (a confusion matrix, the detections shown)
    through a Throttle, so the run's last validation is always in media/ and the loggers."""

    def __init__(self, tag: str, share: float | None = None) -> None:
        self.tag = tag
        self.throttle = Throttle(share)

    def offer(self, trainer: Any, make: Callable[[], Any]) -> None:
        """`make` builds the figure from data it has captured (not from state the next epoch changes)."""
        self.throttle.offer(lambda: log_figure(trainer, self.tag, make()))

    def flush(self) -> None:
        self.throttle.flush()
