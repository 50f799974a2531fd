"""Test-only callback for the Ctrl-C tests: press Ctrl-C in one job of a sweep."""

from __future__ import annotations

from lightning.pytorch.callbacks import Callback


class CtrlC(Callback):
    """Sends SIGINT to this process's whole process group, as a terminal does on Ctrl-C, in the run
    folder named `job` at batch 1 of epoch `epoch`, once (a resumed run, ckpt_path set, is left
    alone). Every run that starts training appends "<job> <ckpt_path or None>" to `marker`."""

    def __init__(self, job: str, marker: str, epoch: int = 1) -> None:
        self.job, self.marker, self.epoch = str(job), marker, epoch

    def on_train_start(self, trainer, pl_module) -> None:
        from pathlib import Path

        with open(self.marker, "a") as f:
            f.write(f"{Path(trainer.default_root_dir).name} {trainer.ckpt_path}\n")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        import os
        import signal
        from pathlib import Path

        here = Path(trainer.default_root_dir).name == self.job
        if here and trainer.ckpt_path is None and trainer.current_epoch == self.epoch and batch_idx == 1:
            os.killpg(os.getpgid(0), signal.SIGINT)
