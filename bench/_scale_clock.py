"""Callback for bench_scale (not a benchmark itself): appends the wall-clock time at each training-epoch end to the run folder."""

from __future__ import annotations

import time
from pathlib import Path

from lightning.pytorch.callbacks import Callback


class EpochClock(Callback):
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            with open(Path(trainer.default_root_dir) / "epoch_ends.txt", "a") as f:
                f.write(f"{time.time()}\n")
