"""Send figures to every logger that takes images, and keep the latest as a PNG in the run folder."""

from __future__ import annotations

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
