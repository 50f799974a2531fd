"""Test-only callback for the mid-epoch resume tests: which batches did training see?"""

from __future__ import annotations

import hashlib
import json

from lightning.pytorch.callbacks import Callback


class RecordBatches(Callback):
    """Appends one JSON line per trained batch to `path`: epoch, batch index and a hash of the batch's
    images and labels (the digits batches carry no sample ids; equal content is the same batch)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # At the start: a pre-empted batch is trained, then the pre-emption callback stops the run in
        # its on_train_batch_end, before a later callback would see the end of that batch.
        images, labels = batch
        digest = hashlib.sha1(images.detach().cpu().numpy().tobytes() + labels.cpu().numpy().tobytes())
        line = {"epoch": trainer.current_epoch, "batch": batch_idx, "hash": digest.hexdigest()[:16]}
        with open(self.path, "a") as f:
            f.write(json.dumps(line) + "\n")


class RecordLR(Callback):
    """Appends one JSON line per optimizer step to `path`: the global step and the learning rate of
    every parameter group at the start of that step (the LR the step trains with)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        lrs = [g["lr"] for g in trainer.optimizers[0].param_groups]
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": trainer.global_step, "lrs": lrs}) + "\n")


class KillJob(Callback):
    """SIGKILLs this process in the run folder named `job` (a sweep's job number), at batch 1 of
    epoch `epoch`, once: a resumed run (ckpt_path set) is not killed again. Hydra's local launcher
    runs the jobs in the sweep's process, so the whole sweep dies, as with `kill -9` or an OOM kill.
    Every run that starts training appends "<job> <ckpt_path or None>" to `marker`."""

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
            os.kill(os.getpid(), signal.SIGKILL)


class RecordFitStart(Callback):
    """Appends one JSON line to `path` at the start of each fit: the global step, epoch and per-group
    learning rates the run starts from. A resumed run starts where its checkpoint stopped; a run
    that silently restarted starts at step 0 with the initial optimizer."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_start(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        groups = trainer.optimizers[0].param_groups if trainer.optimizers else []
        line = {
            "global_step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "lrs": {g.get("name", str(i)): g["lr"] for i, g in enumerate(groups)},
        }
        with open(self.path, "a") as f:
            f.write(json.dumps(line) + "\n")


def fit_starts(path) -> list[dict]:
    """The lines RecordFitStart wrote, in order."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class ZeroWeights(Callback):
    """Sets every weight of the model to zero before each validation of fit: the run's val metrics
    fall to chance (every image gets the same class), so a run it is added to never beats an earlier
    best. `trainer.validate`/`test` of a checkpoint are left alone."""

    def on_validation_start(self, trainer, pl_module) -> None:
        import torch

        if trainer.sanity_checking or trainer.state.fn != "fit":  # validate/test of the best: untouched
            return
        with torch.no_grad():
            for p in pl_module.parameters():
                p.zero_()
