"""Parameter groups and learning-rate schedules, built in one place for every task.

Groups are named ("head", "backbone/no_decay", ...) so Lightning's LearningRateMonitor
shows each one under its name.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from litvision.errors import UserError

log = logging.getLogger(__name__)


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

    Extending a run (`litvision fit resume=<run> trainer.max_epochs=<more>`) re-plans the schedule
    to the new end (`replan`), from the step it resumes at:
    - cosine: continues from its current multiplier down to `min_lr_ratio` at the new last step
      (a new cosine half-wave over the remaining steps; no jump in the LR). Resumed during warm-up,
      the warm-up goes on and the cosine is planned over the new length;
    - step: the milestones stay every `step_epochs` epochs (the decay goes on past the old end);
    - constant and warm-up: unchanged (warm-up is never redone).
    A cosine that had already reached its floor stays there: to train longer at a higher LR, start a
    new run from the weights (model.net.weights=<checkpoint>).
    """

    name: str
    total_steps: int
    steps_per_epoch: float
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    step_epochs: float = 30.0
    gamma: float = 0.1
    #: The re-planned cosine starts at `from_step` with multiplier `from_value` (None: as first planned).
    from_step: int = 0
    from_value: float | None = None
    #: One record per re-plan: the step, the old and new planned number of steps, the multiplier.
    extensions: list[dict[str, Any]] = field(default_factory=list)

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
            start, top = self.warmup_steps, 1.0
            if self.from_value is not None and step >= self.from_step:
                start, top = self.from_step, self.from_value
            span = max(1, self.total_steps - start)
            progress = min(1.0, (step - start) / span)
            return self.min_lr_ratio + (top - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        raise ValueError(f"unknown scheduler name '{self.name}': use constant, cosine or step")

    def replan(self, total_steps: int, step: int) -> dict[str, Any] | None:
        """Re-plan to end at `total_steps`, resuming at `step` (the class docstring has the rule);
        returns the record of the change, or None when the planned length is the same."""
        total_steps = int(total_steps)
        if total_steps == self.total_steps:
            return None
        record: dict[str, Any] = {
            "at_step": int(step),
            "from_total_steps": self.total_steps,
            "to_total_steps": total_steps,
            "multiplier": self(step),
        }
        if self.name == "cosine" and step > self.warmup_steps:
            self.from_step, self.from_value = int(step), self(step)
        self.total_steps = total_steps
        self.extensions.append(record)
        return record


class PlannedLambdaLR(torch.optim.lr_scheduler.LambdaLR):
    """LambdaLR whose restored schedule is re-planned to the length of the run it resumes in.

    LambdaLR's load_state_dict puts the checkpoint's schedule (its `__dict__`, with the old number of
    steps) over the one configure_optimizers just planned, so an extended run would keep the old end
    (a cosine would sit at its floor for the added epochs). Here the plan of this run wins, by the
    rule of `WarmupSchedule.replan`.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        planned = [getattr(fn, "total_steps", None) for fn in self.lr_lambdas]
        super().load_state_dict(state_dict)
        for i, (fn, total) in enumerate(zip(self.lr_lambdas, planned)):
            # The same schedule object may serve several groups (finetuning): re-planned once.
            if isinstance(fn, WarmupSchedule) and total is not None:
                record = fn.replan(total, self.last_epoch)
                if record is not None:
                    from litvision.utils.warn import tell_user

                    tell_user(log, self._replan_note(fn, record, i))

    def _replan_note(self, fn: WarmupSchedule, record: dict[str, Any], group: int) -> str:
        """The re-plan in a user's terms: the LR now and where the schedule now ends."""
        base = float(self.base_lrs[group])
        name = self.optimizer.param_groups[group].get("name")
        lr = f"{name} lr" if name and len(self.optimizer.param_groups) > 2 else "lr"
        end = record["to_total_steps"] / fn.steps_per_epoch
        at = f"epoch {round(end)}" if abs(end - round(end)) < 0.01 else f"step {record['to_total_steps']}"
        now = base * record["multiplier"]
        if record["at_step"] < fn.warmup_steps:
            plan = f"warm-up goes on, then {fn.name}"
        elif fn.name == "cosine":
            plan = f"cosine to {base * fn.min_lr_ratio:.2g} at {at}"
        elif fn.name == "step":
            plan = f"x{fn.gamma:g} every {fn.step_epochs:g} epochs to {at}"
        else:
            plan = f"constant to {at}"
        return f"LR schedule extended: {lr} now {now:.2g}, {plan} (README: The life of a run)"


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
    """A LambdaLR stepped once per optimizer step; epochs are converted to steps. Restored from a
    checkpoint of a run planned for another length, it is re-planned (WarmupSchedule.replan)."""
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
    return PlannedLambdaLR(optimizer, schedule)


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
    if scaling.get("scale_lr"):
        from litvision.utils.warn import tell_user

        tell_user(
            log,
            f"scale_lr={scaling['scale_lr']}: lr x{scaling['lr_scale']:.4g} = "
            + ", ".join(
                f"{g.get('name', 'default')} {g['lr']:.4g}"
                for g in groups
                if "/no_decay" not in str(g.get("name"))
            )
            + f" (global batch {scaling['global_batch_size']} / base_batch_size {scaling['base_batch_size']})",
        )
    optimizer = factory(groups)
    schedule = dict(task.hparams.scheduler or {"name": "constant"})
    total_steps = task.trainer.estimated_stepping_batches
    if not math.isfinite(total_steps):
        # Lightning's "train forever" (max_epochs=-1, max_steps=-1): a schedule planned to its end has none.
        if schedule.get("name", "constant") != "constant" or schedule.get("warmup_epochs"):
            raise UserError(
                f"trainer.max_epochs={task.trainer.max_epochs} with trainer.max_steps=-1 trains without an end, "
                f"but the {schedule.get('name')} LR schedule (model.scheduler) is planned to its end: set "
                "trainer.max_epochs=<n> or trainer.max_steps=<n>, or model.scheduler.name=constant "
                "model.scheduler.warmup_epochs=0."
            )
        total_steps = sys.maxsize
    scheduler = build_scheduler(
        optimizer,
        total_steps=int(total_steps),
        max_epochs=max(1, task.trainer.max_epochs or 1),
        **schedule,
    )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
