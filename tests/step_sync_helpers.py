"""Test-only callback for tests/test_step_syncs.py: which ops that make a GPU wait for its queue
(a tensor read back to Python, or an output whose size depends on the data) run during training steps.

On the CPU nothing waits, but the same aten ops are called: `_local_scalar_dense` is `.item()`,
`bool(t)`, `float(t)`; `nonzero` is boolean indexing; `_unique2` is `torch.unique`.
"""

from __future__ import annotations

import json
import traceback
from collections import Counter
from pathlib import Path

from lightning.pytorch.callbacks import Callback
from torch.utils._python_dispatch import TorchDispatchMode

SYNC_OPS = {
    "_local_scalar_dense",
    "_unique2",
    "unique_dim",
    "unique_consecutive",
    "nonzero",
    "bincount",
    "masked_select",
    "equal",
    "is_nonzero",
    "repeat_interleave",
    # A tensor made from Python numbers: on a GPU, a synchronous copy from pageable host memory.
    "lift_fresh",
}
# Non-capturable torch optimizers keep their step counter on the CPU even on a GPU: its .item() waits for nothing.
CPU_ON_A_GPU_TOO = ("torch/optim/",)
# torch.compile's wrappers around a function it leaves alone (torch._disable_dynamo): not the caller.
COMPILE_WRAPPERS = ("torch/_dynamo/", "torch/_compile.py")
# A DataLoader's fetch (the dataset's __getitem__, the collate_fn: default_collate's label tensor from
# Python ints, NormalizingCollate's mean/std) makes CPU tensors on the host, in a loader worker on a GPU
# machine: nothing on the device waits. No training step runs inside it, so here a frame further out does
# decide; the device cache's batches and the transfer hooks (normalize_on=device) run outside it.
HOST_LOADING = "torch/utils/data/_utils/fetch.py"


class _Record(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter = Counter()
        self.where: dict[str, str] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name.split("::")[-1]
        if name in SYNC_OPS:
            stack = traceback.format_stack(limit=25)
            ours = [
                f for f in stack if "torch/utils/_python_dispatch" not in f and "step_sync_helpers" not in f
            ]
            # Only the frame that made the read decides (torch.compile's wrappers aside): Lightning runs
            # the whole training step inside optimizer.step (its closure), so a torch/optim/ frame
            # further out excuses nothing.
            caller = next(f for f in reversed(ours) if not any(w in f for w in COMPILE_WRAPPERS))
            host_loading = any(HOST_LOADING in f for f in ours)
            if not host_loading and not any(marker in caller for marker in CPU_ON_A_GPU_TOO):
                self.ops[name] += 1
                self.where.setdefault(name, "".join(ours[-6:]))
        return func(*args, **(kwargs or {}))


class SyncSpy(Callback):
    """Records sync ops from the start of training step `first` to the end of step `last` (0-based,
    data loading between them included) and writes {"ops", "where", "bar"} to `path` at the end."""

    def __init__(self, path: str, first: int = 2, last: int = 7) -> None:
        self.path, self.first, self.last = Path(path), first, last
        self.mode = _Record()
        self.step = 0
        self.active = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.step == self.first:
            self.mode.__enter__()
            self.active = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.active and self.step == self.last:
            self.mode.__exit__(None, None, None)
            self.active = False
        self.step += 1

    def on_train_end(self, trainer, pl_module) -> None:
        if self.active:
            self.mode.__exit__(None, None, None)
            self.active = False
        bar = trainer.progress_bar_callback
        self.path.write_text(
            json.dumps(
                {
                    "ops": dict(self.mode.ops),
                    "where": self.mode.where,
                    "bar_type": type(bar).__name__,
                    "bar_shown": getattr(bar, "_shown", None),
                    "train_loss": float(trainer.callback_metrics["train/loss"]),
                    "steps": self.step,
                }
            )
        )
