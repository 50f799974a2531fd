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
