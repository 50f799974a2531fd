"""`compile=true` (torch.compile) and `channels_last=true` for any task whose network is `pl_module.net`.

Both act on the network only, at `setup`, so the task's code is unchanged and checkpoints keep
their keys: `nn.Module.compile()` compiles in place (no `_orig_mod.` prefix in the state dict).
Channels-last (NHWC) speeds up convolutions under mixed precision on tensor-core GPUs; 4-D inputs
are converted by a forward pre-hook so the data pipeline stays as it is.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn


def _to_channels_last(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(
        a.contiguous(memory_format=torch.channels_last) if torch.is_tensor(a) and a.dim() == 4 else a
        for a in args
    )


class PerformanceSwitches(Callback):
    def __init__(
        self, compile: bool = False, channels_last: bool = False, compile_mode: str | None = None
    ) -> None:
        self.compile = compile
        self.channels_last = channels_last
        self.compile_mode = compile_mode
        self._done = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._done:
            return
        net = getattr(pl_module, "net", None)
        if not isinstance(net, nn.Module):
            net = pl_module
        if self.channels_last:
            net.to(memory_format=torch.channels_last)
            net.register_forward_pre_hook(_to_channels_last)
        if self.compile:
            net.compile(mode=self.compile_mode)
        self._done = True
