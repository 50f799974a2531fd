"""Pre-emption: on SIGUSR1/SIGUSR2/SIGTERM, checkpoint at the next batch boundary, stop, and requeue
under SLURM; a resumed run continues bit-exactly (same weights as an uninterrupted run on the CPU
with `trainer.deterministic=true`). Ctrl-C (SIGINT) stops a run the same way, without a requeue, and
one line says how to resume it (`litvision fit resume=<run>`, or for a sweep's job the same sweep
command); a second Ctrl-C before that batch boundary stops at once (KeyboardInterrupt, as before).

Why not Lightning's SLURM auto-requeue: its SIGUSR1 handler saves the checkpoint inside the signal
handler (under DDP, a collective at an arbitrary point of the step) and calls `scontrol requeue`
itself, while submitit (which owns the job) has its own handler on its signal and its own requeue
with a timeout budget. Two requeue mechanisms fight: whichever handler is installed last silently
wins. Here the signal handlers only set a flag; at the next `on_train_batch_end` all ranks agree
(one all-reduce), save `last.ckpt` together, and only then is submitit's own handler called (rank 0
dumps the job and requeues it; submitit counts timeouts). Lightning's auto-requeue is turned off in
`litvision.hardware.trainer_plugins`. Without submitit but under SLURM, rank 0 runs `scontrol requeue`.

The requeued job re-runs the same Hydra job in the same run folder, finds `checkpoints/last.ckpt`
there and resumes from it (the lifecycle, `litvision.lifecycle.runner`); anything else that keeps state in
the run folder (e.g. a W&B run id) is found again the same way.

Exactness: the checkpoint also holds every rank's RNG states (dropout, augmentation in the main
process) and how many batches of the current epoch are done; on resume the train sampler skips those
batches (the data order depends only on (seed, epoch)), so the epoch goes on with the next batch
instead of starting over, with loader workers too (`_skip_batches` says how).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn

from litvision.utils.warn import tell_user

log = logging.getLogger(__name__)
STATE_KEY = "litvision_resume"


def rng_states() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and Python RNG states as tensors and plain types, so the
    checkpoint still loads with `torch.load(weights_only=True)`."""
    import random

    import numpy as np

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype("int64")), int(pos), int(has_gauss), float(cached)],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    import random

    import numpy as np

    torch.set_rng_state(states["torch"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


# lifecycle/sweeps.SWEEP_FILE: a sweep folder holds it (callbacks/ sits below the lifecycle's layer).
_SWEEP_FILE = "sweep.yaml"


def resume_hint(run_dir: Path) -> str:
    """How to continue an interrupted run: its sweep command for a sweep's job, else `fit resume=`."""
    run_dir = Path(run_dir)
    sweep = run_dir.parent
    if (sweep / _SWEEP_FILE).is_file():
        return (
            f"run the same sweep command again (or `litvision sweep resume={sweep}`) to resume job "
            f"{run_dir.name} from it; finished jobs are skipped"
        )
    return f"resume with `litvision fit resume={run_dir}`"


class Preempted(SystemExit):
    """Raised on every rank after the pre-emption checkpoint is written; exit code 128 + signal."""


class _SkipFirst:
    """Wraps a sampler: its next iteration starts `n` indices in, later ones are untouched."""

    def __init__(self, sampler: Any, n: int) -> None:
        self.sampler, self.n = sampler, n

    def __iter__(self) -> Iterator[Any]:
        n, self.n = self.n, 0
        for i, idx in enumerate(self.sampler):
            if i >= n:
                yield idx

    def __len__(self) -> int:
        return len(self.sampler)

    def __getattr__(self, name: str) -> Any:  # set_epoch, seed, ... reach the wrapped sampler
        return getattr(self.sampler, name)


class PreemptionCheckpoint(Callback):
    """Checkpoint-and-stop on pre-emption signals; resume state (RNG, batch position) in every checkpoint."""

    def __init__(
        self,
        dirpath: str,
        filename: str = "last",
        signals: tuple[str, ...] | list[str] = ("SIGUSR1", "SIGUSR2", "SIGTERM", "SIGINT"),
        requeue: bool = True,
    ) -> None:
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self.signals = [getattr(signal, s) if isinstance(s, str) else signal.Signals(s) for s in signals]
        self.requeue = requeue
        self._received: int | None = None
        self._stopping = False  # pre-empted: checkpoint saved, this process is on its way out
        self._previous: dict[int, Any] = {}
        self._loaded: dict[str, Any] | None = None

    # -- signals: the handler only sets a flag ----------------------------------------------------
    def _handler(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and self._received == signal.SIGINT:
            raise KeyboardInterrupt  # Ctrl-C twice: the user does not want to wait for the checkpoint
        self._received = signum

    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._received = None
        self._stopping = False
        for s in self.signals:
            self._previous[s] = signal.signal(s, self._handler)

    def _restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}
        pending, self._received = self._received, None
        if pending is not None:
            # Arrived too late to act on during training (e.g. in the last validation): deliver it
            # to whoever handles it outside training instead of swallowing it.
            signal.raise_signal(pending)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After Lightning's own SIGTERM handler is installed (in Trainer._run), so ours is the one
        # that runs during training; Lightning restores its originals at teardown.
        self._install()
        self._apply_loaded_state(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._received = None
        if self._stopping:
            # Pre-empted: the requeue (or the scheduler's cancel) sends SIGTERM to every task now.
            # Putting back Lightning's SIGTERM handler here would let that SIGTERM run its
            # `dist.broadcast` (lightning 2.6 `_SignalConnector._sigterm_notifier_fn`) while the
            # other ranks are already exiting: it hangs or fails with "Connection reset by peer",
            # and that error replaces our SystemExit, so Hydra's run_job returns it as a failed job
            # and submitit pickles it as this task's result. The requeued job writes its own result
            # to the same file later; a submitter that reads the old one first reports the
            # pre-emption's connection error although the requeued job succeeded. So our
            # flag-only handlers stay until Lightning's teardown restores the handlers from before
            # `fit` (under submitit: its SIGTERM bypass).
            self._previous = {}
            return
        self._restore()

    # -- the safe point -----------------------------------------------------------------------------
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        received = self._received is not None
        if trainer.world_size > 1:
            # Every rank reaches this point at the same step; a signal seen by any rank stops all.
            received = trainer.strategy.reduce_boolean_decision(received, all=False)
        if not received:
            return
        signum = self._received or signal.SIGUSR1
        name = signal.Signals(signum).name
        self._stopping = True
        trainer.save_checkpoint(str(self.path))
        requeue = (
            self.requeue and signum not in (signal.SIGTERM, signal.SIGINT) and os.environ.get("SLURM_JOB_ID")
        )
        if trainer.is_global_zero:
            # On the console too (the job's stdout): the quiet console keeps Lightning's info lines in the log file.
            hint = "" if requeue else f"; {resume_hint(self.path.parent.parent)}"
            tell_user(
                log,
                f"{name}: saved {self.path} at epoch {trainer.current_epoch}, step {trainer.global_step}{hint}.",
            )
        if requeue:
            self._requeue(trainer, signum)
        raise Preempted(128 + int(signum))

    def _requeue(self, trainer: L.Trainer, signum: int) -> None:
        previous = self._previous.get(signum)
        owner = getattr(previous, "__self__", None)
        if owner is not None and type(owner).__module__.startswith("submitit"):
            # submitit's checkpoint_and_try_requeue: rank 0 dumps the job (hydra-submitit-launcher's
            # `checkpoint` resubmits the same job) and requeues it, then exits; other ranks return.
            previous(signum, None)
            return
        if trainer.is_global_zero:
            job = os.environ.get("SLURM_ARRAY_JOB_ID")
            job = f"{job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if job else os.environ["SLURM_JOB_ID"]
            result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
            if result.returncode == 0:
                tell_user(log, f"Requeued SLURM job {job}.")
            else:
                rank_zero_warn(f"scontrol requeue {job} failed: {result.stderr.strip()}")

    # -- resume state in every checkpoint ------------------------------------------------------------
    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        states = rng_states()
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, states)
        else:
            gathered = [states]
        progress = trainer.fit_loop.epoch_loop.batch_progress.current
        done = int(progress.processed)
        total = trainer.num_training_batches
        mid_epoch = trainer.training and done > 0 and (total == float("inf") or done < total)
        checkpoint[STATE_KEY] = {
            "rng": gathered,
            "epoch": trainer.current_epoch,
            "batches_done": done if mid_epoch else 0,
        }

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self._loaded = checkpoint.get(STATE_KEY)

    def _apply_loaded_state(self, trainer: L.Trainer) -> None:
        state, self._loaded = self._loaded, None
        if not state:
            return
        rng = state.get("rng") or []
        if rng:
            mine = rng[trainer.global_rank] if len(rng) == trainer.world_size else None
            if mine is None:
                rank_zero_warn(
                    f"Checkpoint RNG states are from {len(rng)} process(es), this run has {trainer.world_size}: "
                    "random draws after resume will differ from an uninterrupted run."
                )
            else:
                set_rng_states(mine)
        done = int(state.get("batches_done") or 0)
        if done and state.get("epoch") == trainer.current_epoch:
            self._skip_batches(trainer, done)

    def _skip_batches(self, trainer: L.Trainer, done: int) -> None:
        """Start the train sampler `done` batches into the current epoch, with or without workers.

        Lightning (2.x) creates the train loader's iterator in `FitLoop.setup_data`, before
        `on_train_start` and before the sampler's `set_epoch`, and a resumed epoch keeps that
        iterator. Without workers nothing is drawn from the sampler until the first batch, so
        wrapping the sampler is enough. With workers the iterator has already drawn its first
        `prefetch_factor * num_workers` batches of indices (in the order of epoch 0, since
        `set_epoch` had not run yet): so the sampler is set to the resumed epoch, wrapped, and the
        iterator is created again; a persistent worker pool drops what it had prefetched and stays.

        The batches are then exactly the ones not trained on yet. Random augmentation inside
        loader workers is not replayed bit for bit: a worker's RNG state is not in the checkpoint.
        """
        from torch.utils.data import DataLoader

        loader = trainer.train_dataloader
        batch_sampler = getattr(loader, "batch_sampler", None) if isinstance(loader, DataLoader) else None
        if batch_sampler is None or not hasattr(batch_sampler, "sampler"):
            rank_zero_warn(
                "Resuming mid-epoch, but the train loader cannot be fast-forwarded (it is not a DataLoader with "
                f"a batch sampler): the first {done} batches of this epoch are seen again."
            )
            return
        sampler = batch_sampler.sampler
        if callable(getattr(sampler, "set_epoch", None)):
            # The value FitLoop.on_advance_start sets next; the indices are drawn before that.
            sampler.set_epoch(trainer.fit_loop.epoch_progress.current.processed)
        batch_sampler.sampler = _SkipFirst(sampler, done * batch_sampler.batch_size)
        fetcher = getattr(trainer.fit_loop, "_data_fetcher", None)
        if fetcher is not None and loader.num_workers > 0:
            iter(fetcher)  # a new iterator: its workers' first indices come from the skipping sampler
        if trainer.is_global_zero:
            tell_user(
                log,
                f"Resuming mid-epoch: skipping the {done} batch(es) of epoch {trainer.current_epoch} already trained on.",
            )
