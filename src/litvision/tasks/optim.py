"""Parameter groups and learning-rate schedules, built in one place for every task.

Groups are named ("head", "backbone/no_decay", ...) so Lightning's LearningRateMonitor
shows each one under its name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


def _is_no_decay(name: str, p: torch.Tensor) -> bool:
    # Biases and norm/scale vectors are 1-d; decaying them hurts and is not what the recipes do.
    return p.ndim <= 1 or name.endswith(".bias")


def build_param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.0,
    groups: Mapping[str, Mapping[str, Any]] | None = None,
    no_decay_norm_bias: bool = True,
) -> list[dict[str, Any]]:
    """Split trainable parameters into named groups.

    `groups` maps a group name to `{prefixes: [...], lr: ..., lr_scale: ..., weight_decay: ...}`;
    a parameter joins the first group with a prefix of its name, the others form
    "default". Frozen parameters (requires_grad=False) are left out. With
    `no_decay_norm_bias`, each group also gets a "<name>/no_decay" twin at weight decay 0.
    """
    groups = dict(groups or {})
    specs = {name: dict(spec) for name, spec in groups.items()}
    buckets: dict[str, list[tuple[str, torch.Tensor]]] = {name: [] for name in [*specs, "default"]}
    for pname, p in model.named_parameters():
        if not p.requires_grad:
            continue
        target = next(
            (
                g
                for g, s in specs.items()
                if any(pname.startswith(pre) for pre in _as_list(s.get("prefixes")))
            ),
            "default",
        )
        buckets[target].append((pname, p))

    out: list[dict[str, Any]] = []
    for gname, params in buckets.items():
        if not params:
            continue
        spec = specs.get(gname, {})
        g_lr = spec.get("lr") if spec.get("lr") is not None else lr * float(spec.get("lr_scale", 1.0))
        g_wd = spec.get("weight_decay", weight_decay)
        decay = [p for n, p in params if not (no_decay_norm_bias and _is_no_decay(n, p))]
        no_decay = [p for n, p in params if no_decay_norm_bias and _is_no_decay(n, p)]
        if decay:
            out.append({"name": gname, "params": decay, "lr": g_lr, "weight_decay": g_wd})
        if no_decay:
            out.append({"name": f"{gname}/no_decay", "params": no_decay, "lr": g_lr, "weight_decay": 0.0})
    if not out:
        raise ValueError("the model has no trainable parameters: check the freeze settings")
    return out


def _as_list(x: Any) -> list[str]:
    if x is None:
        return []
    if isinstance(x, str):
        return [x]
    return list(x)


@dataclass
class WarmupSchedule:
    """LR multiplier of the optimizer step: linear warm-up, then constant, cosine or step decay.

    A callable object rather than a lambda so that LambdaLR saves and restores it
    in checkpoints.
    """

    name: str
    total_steps: int
    steps_per_epoch: float
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    step_epochs: float = 30.0
    gamma: float = 0.1

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.name == "constant":
            return 1.0
        if self.name == "step":
            # The guard before flooring: step 9 at 9/7 steps per epoch is epoch 6.999999999999999.
            decays = math.floor(step / self.steps_per_epoch / self.step_epochs + 1e-9)
            return self.gamma**decays
        if self.name == "cosine":
            span = max(1, self.total_steps - self.warmup_steps)
            progress = min(1.0, (step - self.warmup_steps) / span)
            return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        raise ValueError(f"unknown scheduler name '{self.name}': use constant, cosine or step")


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    max_epochs: int,
    name: str = "cosine",
    warmup_epochs: float = 0.0,
    min_lr_ratio: float = 0.0,
    step_epochs: float = 30.0,
    gamma: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR stepped once per optimizer step; epochs are converted to steps."""
    steps_per_epoch = max(1.0, total_steps / max(1, max_epochs))
    schedule = WarmupSchedule(
        name=name,
        total_steps=int(total_steps),
        steps_per_epoch=steps_per_epoch,
        warmup_steps=int(round(warmup_epochs * steps_per_epoch)),
        min_lr_ratio=min_lr_ratio,
        step_epochs=step_epochs,
        gamma=gamma,
    )
    schedule(schedule.warmup_steps)  # fail on a bad name now, not at the first step
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def trainable(params: Iterable[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    return [p for p in params if p.requires_grad]


def lr_scale(spec: Mapping[str, Any] | None, trainer: Any) -> dict[str, Any]:
    """The factor `scale_lr: linear | sqrt` puts on every group's lr, from the Trainer's world size.

    The configured lr is the one tuned for `base_batch_size` (global); on more devices or nodes
    `linear` multiplies it by global_batch / base_batch_size (Goyal et al., 2017, "Accurate, Large
    Minibatch SGD"), `sqrt` by the square root of that ratio (common for Adam-type optimizers).
    Global batch = per-device batch x world size x accumulate_grad_batches.
    """
    spec = dict(spec or {})
    world = int(getattr(trainer, "world_size", 1) or 1)
    accumulate = int(getattr(trainer, "accumulate_grad_batches", 1) or 1)
    per_device = spec.get("batch_size")
    gbs = int(per_device) * world * accumulate if per_device else None
    info: dict[str, Any] = {"world_size": world, "global_batch_size": gbs, "lr_scale": 1.0}
    rule, base = spec.get("rule"), spec.get("base_batch_size")
    if rule and base and gbs:
        ratio = gbs / float(base)
        info.update(
            lr_scale=ratio if rule == "linear" else math.sqrt(ratio), scale_lr=rule, base_batch_size=int(base)
        )
    return info


def configure_optimization(
    task: Any, make_groups: Callable[[float, float], list[dict[str, Any]]]
) -> dict[str, Any]:
    """Lightning's `configure_optimizers` result for a task with `optimizer`/`scheduler` hparams.

    `make_groups(lr, weight_decay)` builds the named parameter groups from the optimizer
    config's defaults; the scheduler (warm-up, then decay) is stepped per optimizer step.
    """
    from hydra.utils import instantiate

    factory = instantiate(task.hparams.optimizer)
    kw = getattr(factory, "keywords", {})
    groups = make_groups(kw.get("lr", 1e-3), kw.get("weight_decay", 0.0))
    # Scaling with the global batch is known only now, from the Trainer's world size.
    scaling = lr_scale(getattr(task, "lr_scaling", None), task.trainer)
    task.lr_scaling_info = scaling
    for g in groups:
        g["lr"] = g["lr"] * scaling["lr_scale"]
    optimizer = factory(groups)
    scheduler = build_scheduler(
        optimizer,
        total_steps=int(task.trainer.estimated_stepping_batches),
        max_epochs=max(1, task.trainer.max_epochs or 1),
        **dict(task.hparams.scheduler or {"name": "constant"}),
    )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
