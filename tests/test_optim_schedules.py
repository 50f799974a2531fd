"""Parameter groups, schedules and lr scaling at their edges (tasks/optim.py). Written against the
survivors of `make mutate` on tasks/optim.py; tests/test_optim_and_splits.py has the recipe cases."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from conftest import compose_cfg
from torch import nn

from litvision.tasks.optim import (
    WarmupSchedule,
    build_param_groups,
    build_scheduler,
    lr_scale,
    trainable,
)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.neck = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)
        self.scale = nn.Parameter(torch.ones(()))  # a 0-d parameter: no decay


def _groups(groups: list[dict]) -> dict[str, dict]:
    return {g["name"]: {**g, "params": [id(p) for p in g["params"]]} for g in groups}


def test_groups_take_the_first_matching_prefix_absolute_lr_or_lr_scale_and_their_own_decay() -> None:
    """Catches: a parameter joining a later matching group, `lr` ignored for `lr_scale` (or lr_scale
    ignored), the group's weight_decay ignored, and a string prefix iterated letter by letter."""
    net = Net()
    groups = _groups(
        build_param_groups(
            net,
            lr=0.1,
            weight_decay=0.01,
            groups={
                "head": {"prefixes": "head", "lr": 0.5, "weight_decay": 0.2},
                "neck": {"prefixes": ["neck", "head"], "lr_scale": 0.3},
                "unused": {"prefixes": ["nothing."]},
            },
        )
    )
    assert set(groups) == {"head", "head/no_decay", "neck", "neck/no_decay", "default", "default/no_decay"}
    assert groups["head"]["params"] == [id(net.head.weight)]
    assert groups["head/no_decay"]["params"] == [id(net.head.bias)]
    assert groups["head"]["lr"] == 0.5 and groups["head"]["weight_decay"] == 0.2
    assert groups["head/no_decay"]["lr"] == 0.5 and groups["head/no_decay"]["weight_decay"] == 0.0
    assert groups["neck"]["lr"] == pytest.approx(0.03) and groups["neck"]["weight_decay"] == 0.01
    assert groups["neck"]["params"] == [id(net.neck.weight)]
    assert groups["default"]["params"] == [id(net.backbone[0].weight)]
    assert groups["default"]["lr"] == 0.1 and groups["default"]["weight_decay"] == 0.01
    no_decay = {id(net.scale), id(net.backbone[0].bias), id(net.backbone[1].weight), id(net.backbone[1].bias)}
    assert set(groups["default/no_decay"]["params"]) == no_decay


def test_a_bias_by_name_is_not_decayed_even_when_it_is_not_1d() -> None:
    """Catches: the `.bias` name rule dropped (only the ndim rule left) or `or` weakened to `and`."""
    net = nn.Module()
    net.proj = nn.Module()
    net.proj.weight = nn.Parameter(torch.ones(2, 2))
    net.proj.bias = nn.Parameter(torch.ones(2, 2))  # 2-d, named bias (as some attention layers have)
    groups = _groups(build_param_groups(net, lr=1.0, weight_decay=0.5))
    assert groups["default"]["params"] == [id(net.proj.weight)]
    assert groups["default/no_decay"]["params"] == [id(net.proj.bias)]


def test_without_no_decay_norm_bias_every_parameter_decays() -> None:
    """Catches: `no_decay_norm_bias=False` still splitting biases and norms into a /no_decay group."""
    net = Net()
    groups = build_param_groups(net, lr=1.0, weight_decay=0.5, no_decay_norm_bias=False)
    assert [g["name"] for g in groups] == ["default"]
    assert len(groups[0]["params"]) == len(list(net.parameters())) and groups[0]["weight_decay"] == 0.5
    assert build_param_groups(net, lr=1.0)[0]["weight_decay"] == 0.0  # no decay unless asked for


def test_frozen_parameters_are_left_out_and_all_frozen_is_an_error() -> None:
    """Catches: frozen parameters handed to the optimizer, and an empty optimizer built silently."""
    net = Net()
    net.backbone.requires_grad_(False)
    ids = {id(p) for g in build_param_groups(net, lr=1.0) for p in g["params"]}
    assert ids == {id(p) for p in trainable(net.parameters())}
    assert not ids & {id(p) for p in net.backbone.parameters()}
    net.requires_grad_(False)
    assert trainable(net.parameters()) == []
    with pytest.raises(
        ValueError, match=r"^the model has no trainable parameters: check the freeze settings$"
    ):
        build_param_groups(net, lr=1.0)


# -- schedules ----------------------------------------------------------------------------------------
def test_constant_after_warmup_and_no_warmup() -> None:
    """Catches: the warm-up ramp changed (step / warmup or off by one), and `constant` decaying."""
    s = WarmupSchedule("constant", total_steps=100, steps_per_epoch=10, warmup_steps=4)
    assert [s(i) for i in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert s(99) == 1.0 and WarmupSchedule("constant", 10, 1.0)(0) == 1.0


def test_step_decay_counts_whole_epochs_and_cosine_ends_at_min_lr() -> None:
    """Catches: step decay by fractional epochs or one epoch early (a float quotient just under a
    whole epoch, floored without a guard), and the cosine span or its clamp past the last step changed."""
    s = WarmupSchedule("step", total_steps=90, steps_per_epoch=3, step_epochs=2)
    assert [s(i) for i in (0, 5, 6, 11, 12)] == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01])
    # Step 9 at 9/7 steps per epoch starts epoch 7 (float division gives 6.999999999999999).
    edge = WarmupSchedule("step", total_steps=9, steps_per_epoch=9 / 7, step_epochs=1, gamma=0.5)
    assert [edge(8), edge(9)] == [0.5**6, 0.5**7]
    c = WarmupSchedule("cosine", total_steps=12, steps_per_epoch=1, warmup_steps=2, min_lr_ratio=0.2)
    assert c(2) == pytest.approx(1.0) and c(7) == pytest.approx(0.2 + 0.8 * 0.5)
    assert c(12) == pytest.approx(0.2) and c(50) == pytest.approx(0.2)  # clamped past the end
    flat = WarmupSchedule("cosine", total_steps=3, steps_per_epoch=1, warmup_steps=3)
    assert flat(3) == pytest.approx(1.0) and flat(4) == pytest.approx(0.0)  # span of at least one step


def test_unknown_schedule_name_is_named_in_the_error() -> None:
    """Catches: the error message losing the name or the choices."""
    with pytest.raises(ValueError, match=r"^unknown scheduler name 'linear': use constant, cosine or step$"):
        WarmupSchedule("linear", 10, 1.0)(0)


def test_build_scheduler_converts_epochs_to_steps() -> None:
    """Catches: warm-up epochs not converted with the steps per epoch, the conversion's guards (at
    least one step per epoch, max_epochs 0), and the schedule's arguments not passed on."""
    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=1.0)
    sched = build_scheduler(
        opt, total_steps=40, max_epochs=4, name="cosine", warmup_epochs=0.5, min_lr_ratio=0.1
    )
    f = sched.lr_lambdas[0]
    assert (f.name, f.total_steps, f.steps_per_epoch, f.warmup_steps, f.min_lr_ratio) == (
        "cosine",
        40,
        10.0,
        5,
        0.1,
    )
    assert opt.param_groups[0]["lr"] == pytest.approx(0.2)  # step 0 of a 5-step warm-up
    step = build_scheduler(opt, total_steps=3, max_epochs=0, name="step", step_epochs=2, gamma=0.5)
    g = step.lr_lambdas[0]
    assert (g.steps_per_epoch, g.step_epochs, g.gamma, g.warmup_steps) == (3.0, 2, 0.5, 0)
    tiny = build_scheduler(opt, total_steps=2, max_epochs=8, name="constant").lr_lambdas[0]
    assert tiny.steps_per_epoch == 1.0
    defaults = build_scheduler(opt, total_steps=10, max_epochs=2).lr_lambdas[0]
    assert (defaults.name, defaults.warmup_steps, defaults.min_lr_ratio) == ("cosine", 0, 0.0)
    assert (defaults.step_epochs, defaults.gamma) == (30.0, 0.1)


# -- lr scaling ---------------------------------------------------------------------------------------
def test_lr_scale_reports_the_global_batch_and_the_rule() -> None:
    """Catches: accumulation or world size left out of the global batch, sqrt and linear swapped, the
    factor applied without a rule or a base, and a missing world size not read as 1."""
    spec = {"rule": "sqrt", "base_batch_size": 32, "batch_size": 16}
    info = lr_scale(spec, SimpleNamespace(world_size=4, accumulate_grad_batches=2))
    assert info == {
        "world_size": 4,
        "global_batch_size": 128,
        "lr_scale": pytest.approx(2.0),
        "scale_lr": "sqrt",
        "base_batch_size": 32,
    }
    assert lr_scale({**spec, "rule": "linear"}, SimpleNamespace(world_size=4))["lr_scale"] == 2.0
    bare = lr_scale({"batch_size": 16}, SimpleNamespace())
    assert bare == {"world_size": 1, "global_batch_size": 16, "lr_scale": 1.0}
    assert lr_scale({**spec, "base_batch_size": None}, SimpleNamespace(world_size=4))["lr_scale"] == 1.0
    assert lr_scale(None, SimpleNamespace(world_size=2)) == {
        "world_size": 2,
        "global_batch_size": None,
        "lr_scale": 1.0,
    }
    assert math.isclose(
        lr_scale({**spec, "batch_size": 8}, SimpleNamespace(world_size=None, accumulate_grad_batches=None))[
            "lr_scale"
        ],
        math.sqrt(8 / 32),
    )


# -- configure_optimization in a real fit -------------------------------------------------------------
def _fit(overrides: list[str], runs_dir, build: bool = True, **trainer_kw):
    """Fit the digits task for a few steps with a bare Lightning Trainer; returns (task, trainer)."""
    import lightning as L
    from hydra.utils import instantiate

    from litvision.build import build_datamodule, build_task

    cfg = compose_cfg(["experiment=digits_cnn", "model.net.width=4", *overrides], runs_dir)
    # build=False: the task as a notebook builds it (instantiate), without build_task's lr_scaling.
    task = build_task(cfg) if build else instantiate(cfg.model)
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        **trainer_kw,
    )
    trainer.fit(task, datamodule=build_datamodule(cfg))
    return task, trainer


def test_optimizer_and_scheduler_follow_the_config_and_the_trainer(runs_dir) -> None:
    """Catches: the optimizer config's weight_decay not reaching the groups, accumulation not in the
    scaled lr (the trainer not passed to lr_scale), the scheduler config dropped (cosine instead of
    step), max_epochs replaced by 1 in the steps-per-epoch conversion, and the scheduler not stepped
    per optimizer step (`interval`) or not returned under Lightning's `lr_scheduler` key."""
    task, trainer = _fit(
        [
            "model.optimizer.weight_decay=0.05",
            "model.scheduler.name=step",
            "model.scheduler.warmup_epochs=0",
            "model.scheduler.step_epochs=1",
            "model.scheduler.gamma=0.5",
            "scale_lr=linear",
            "base_batch_size=32",  # 64 x 1 device x 2 accumulated = 128: x4
        ],
        runs_dir,
        max_epochs=2,
        limit_train_batches=4,
        accumulate_grad_batches=2,
    )
    assert task.lr_scaling_info["lr_scale"] == 4.0 and task.lr_scaling_info["global_batch_size"] == 128
    groups = {g["name"]: g for g in trainer.optimizers[0].param_groups}
    assert groups["default"]["weight_decay"] == 0.05 and groups["default/no_decay"]["weight_decay"] == 0.0
    assert groups["default"]["initial_lr"] == pytest.approx(4 * 3e-3)
    (config,) = trainer.lr_scheduler_configs
    assert config.interval == "step"
    f = config.scheduler.lr_lambdas[0]
    assert (f.name, f.total_steps, f.steps_per_epoch, f.gamma) == ("step", 4, 2.0, 0.5)
    # 4 optimizer steps, decayed once at the start of epoch 1: the lr after the last step is x0.25.
    assert groups["default"]["lr"] == pytest.approx(4 * 3e-3 * 0.25)


def test_optimizer_defaults_without_lr_scheduler_or_scaling(runs_dir) -> None:
    """Catches: the default lr (1e-3, when the optimizer config has none) or weight decay (0) changed, a missing scheduler
    config not read as a constant schedule, one epoch counted as two, and a task without lr_scaling
    (built by plain instantiate) failing."""
    task, trainer = _fit(
        ["~model.optimizer.lr", "~model.optimizer.weight_decay", "model.scheduler=null"],
        runs_dir,
        build=False,
        max_epochs=1,
        limit_train_batches=2,
    )
    assert task.lr_scaling_info["lr_scale"] == 1.0
    groups = {g["name"]: g for g in trainer.optimizers[0].param_groups}
    assert groups["default"]["initial_lr"] == 1e-3 and groups["default"]["lr"] == 1e-3
    assert groups["default"]["weight_decay"] == 0.0  # no decay unless the optimizer config asks
    f = trainer.lr_scheduler_configs[0].scheduler.lr_lambdas[0]
    assert (f.name, f.total_steps, f.steps_per_epoch) == ("constant", 2, 2.0)
