"""Test-only callbacks that fail a run for real (importable by subprocesses: tests/ is put on PYTHONPATH)."""

from __future__ import annotations

import os
import resource
import signal

from lightning.pytorch.callbacks import Callback


class KillAtStep(Callback):
    """SIGKILLs this process before optimizer step `step`, as an out-of-memory kill or a node crash
    would; only in a run started fresh, not in its resume (which may get the same callbacks)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step and trainer.ckpt_path is None:
            os.kill(os.getpid(), signal.SIGKILL)


class FileSizeLimitFrom(Callback):
    """From epoch `epoch` on, no file this process writes may grow past `max_bytes` (RLIMIT_FSIZE):
    write() then fails with EFBIG, as it fails with ENOSPC on a full disk. SIGXFSZ is ignored so the
    process gets the error instead of being killed."""

    def __init__(self, epoch: int, max_bytes: int) -> None:
        self.epoch, self.max_bytes = epoch, max_bytes

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.max_bytes, hard))


class RecordLastCheckpoint(Callback):
    """Before each training step, appends [steps done, global_step stored in last.ckpt or None] to `path`."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        import json
        from pathlib import Path

        import torch

        last = Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
        stored = (
            torch.load(last, map_location="cpu", weights_only=True)["global_step"] if last.is_file() else None
        )
        with open(self.path, "a") as f:
            f.write(json.dumps([trainer.global_step, stored]) + "\n")
