"""Test-only helpers for the scale-out tests (importable by subprocesses: tests/ is put on PYTHONPATH)."""

from __future__ import annotations

import os
import signal

from lightning.pytorch.callbacks import Callback


class SignalAtStep(Callback):
    """Sends a real signal to this process after a given optimizer step (pre-emption, mid-epoch)."""

    def __init__(self, step: int, signame: str = "SIGUSR1", rank: int = 0) -> None:
        self.step, self.signum, self.rank = step, getattr(signal, signame), rank

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # Once: a resumed run (which replays the run's own callbacks) is not pre-empted again.
        resumed = trainer.ckpt_path is not None
        if trainer.global_step == self.step and trainer.global_rank == self.rank and not resumed:
            os.kill(os.getpid(), self.signum)


def final_weights(ckpt_path: str) -> dict:
    import torch

    return torch.load(ckpt_path, map_location="cpu", weights_only=True)["state_dict"]


class SlowTraining(Callback):
    """Marks the start of training (run folder appended to `marker`) and slows each step a little,
    so that a test can signal the job while it trains."""

    def __init__(self, marker: str, seconds: float = 0.3) -> None:
        self.marker, self.seconds = marker, seconds

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            with open(self.marker, "a") as f:
                f.write(f"{trainer.default_root_dir}\n")

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        import time

        time.sleep(self.seconds)


class SaveRankWeights(Callback):
    """At the end of training each rank saves its parameters to `<folder>/rank<k>.pt`: under DDP
    every rank must end with the same weights."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def on_train_end(self, trainer, pl_module) -> None:
        import torch

        os.makedirs(self.folder, exist_ok=True)
        params = {n: p.detach().cpu().clone() for n, p in pl_module.named_parameters()}
        torch.save(params, os.path.join(self.folder, f"rank{trainer.global_rank}.pt"))


class RecordOutputDtypes(Callback):
    """Records the dtype of every Conv2d/Linear output during training steps, and the parameters'
    dtypes, into the JSON file `path` at the end of training: bf16-mixed computes in bfloat16
    under autocast while the weights stay float32."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.outputs: set[str] = set()
        self.handles: list = []

    def on_train_start(self, trainer, pl_module) -> None:
        import torch

        def hook(module, args, output) -> None:
            if module.training:
                self.outputs.add(str(output.dtype).removeprefix("torch."))

        for m in pl_module.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                self.handles.append(m.register_forward_hook(hook))

    def on_train_end(self, trainer, pl_module) -> None:
        import json

        for h in self.handles:
            h.remove()
        params = sorted({str(p.dtype).removeprefix("torch.") for p in pl_module.parameters()})
        with open(self.path, "w") as f:
            json.dump({"outputs": sorted(self.outputs), "params": params}, f)


class SigtermWhileStopping(Callback):
    """Sends this process a real SIGTERM while the Trainer unwinds from an exception, as SLURM does
    to every task right after a pre-empted job is requeued (`scontrol requeue` cancels the step)."""

    def on_exception(self, trainer, pl_module, exception) -> None:
        os.kill(os.getpid(), signal.SIGTERM)


class RecordSeenImages(Callback):
    """Each rank writes `<folder>/seen<k>.json`: a hash of every training image it was given, in order,
    so a test can tell whether the ranks' shards are disjoint and together cover the data."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.seen: list[str] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        import hashlib

        images = batch[0].detach().cpu().contiguous()
        self.seen += [hashlib.sha1(img.numpy().tobytes()).hexdigest() for img in images]

    def on_train_end(self, trainer, pl_module) -> None:
        import json

        os.makedirs(self.folder, exist_ok=True)
        with open(os.path.join(self.folder, f"seen{trainer.global_rank}.json"), "w") as f:
            json.dump(self.seen, f)
