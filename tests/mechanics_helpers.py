"""Test-only network and callbacks for tests/test_training_mechanics.py (instantiated by Hydra from the
composed config, so they run inside the real `litvision fit` lifecycle)."""

from __future__ import annotations

import json

import torch
from lightning.pytorch.callbacks import Callback
from torch import nn


class FlatLinear(nn.Module):
    """A linear classifier on the flattened image: no BatchNorm and no dropout, so one batch of 2n
    samples and two accumulated batches of n give the same gradient (up to float rounding)."""

    head_prefixes = ("head",)

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 8) -> None:
        super().__init__()
        self.head = nn.Linear(in_channels * image_size * image_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.flatten(1))


def _total_norm(tensors) -> float:
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors])))


class StepProbe(Callback):
    """Per optimizer step: the gradient norm before Lightning clips it (`on_before_optimizer_step`
    runs before clipping) and the norm of the update the optimizer then applied, divided by the lr
    (with plain SGD and no weight decay that is the norm of the gradient the optimizer used).
    Written to `path` as JSON at the end of training."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.steps: list[dict] = []
        self._before: list[torch.Tensor] | None = None

    def _params(self, pl_module) -> list[torch.Tensor]:
        return [p for p in pl_module.parameters() if p.requires_grad]

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        params = self._params(pl_module)
        self._before = [p.detach().clone() for p in params]
        self._lr = optimizer.param_groups[0]["lr"]
        self._grad = _total_norm([p.grad for p in params if p.grad is not None])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._before is None:  # an accumulating micro-batch: no step yet
            return
        delta = [p.detach() - b for p, b in zip(self._params(pl_module), self._before)]
        self.steps.append(
            {
                "global_step": trainer.global_step,
                "batch_idx": batch_idx,
                "grad_norm_before_clip": self._grad,
                "applied_grad_norm": _total_norm(delta) / self._lr,
            }
        )
        self._before = None

    def on_train_end(self, trainer, pl_module) -> None:
        with open(self.path, "w") as f:
            json.dump(self.steps, f)


class FirstConvInput(Callback):
    """Records the memory format of what the network's first Conv2d receives in training steps."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.seen: list[dict] = []

    def on_fit_start(self, trainer, pl_module) -> None:
        conv = next(m for m in pl_module.modules() if isinstance(m, nn.Conv2d))

        def hook(module, args):
            if module.training:
                x = args[0]
                self.seen.append(
                    {
                        "shape": list(x.shape),
                        "channels_last": x.is_contiguous(memory_format=torch.channels_last),
                        "contiguous_nchw": x.is_contiguous(),
                        "weight_channels_last": module.weight.is_contiguous(
                            memory_format=torch.channels_last
                        ),
                    }
                )

        conv.register_forward_pre_hook(hook)

    def on_train_end(self, trainer, pl_module) -> None:
        with open(self.path, "w") as f:
            json.dump(self.seen, f)


class RawWeightsPerStep(Callback):
    """Saves the raw (trained, not averaged) parameters after every optimizer step to `path`, a list of
    {name: tensor}: what an EMA of the weights must be the average of."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.steps: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        self.steps.append({n: p.detach().clone() for n, p in pl_module.named_parameters()})

    def on_train_end(self, trainer, pl_module) -> None:
        torch.save(self.steps, self.path)
