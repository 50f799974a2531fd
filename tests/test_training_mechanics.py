"""Training mechanics in real `litvision fit` runs on the CPU: gradient accumulation, gradient
clipping, the channels-last input hook, `compile=true`, and the learning rate of a backbone group
that joins mid-run under `scale_lr`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import compose_cfg

QUIET = ["callbacks.rich_progress_bar=null", "callbacks.model_summary=null"]
BASE = [
    "experiment=digits_cnn",
    "trainer.max_epochs=1",
    "++trainer.limit_val_batches=1",
    "trainer.deterministic=true",
    "test=false",
    "logger=csv",
]
# A BatchNorm-free linear model trained by plain SGD at a constant lr: gradients and updates can be
# compared exactly between runs.
LINEAR_SGD = [
    "model.net._target_=mechanics_helpers.FlatLinear",
    "~model.net.width",
    "~model.net.dropout",
    "~model.net.pool_size",
    "model.optimizer._target_=torch.optim.SGD",
    "model.optimizer.lr=0.1",
    "model.optimizer.weight_decay=0",
    "model.scheduler.name=constant",
    "model.scheduler.warmup_epochs=0",
    *QUIET,
]


pytestmark = pytest.mark.usefixtures("helpers_importable")  # mechanics_helpers.* by name


def _weights(summary: dict) -> dict:
    import torch

    return torch.load(summary["last_checkpoint"], map_location="cpu", weights_only=True)["state_dict"]


def test_accumulating_two_half_batches_equals_one_full_batch(runs_dir: Path) -> None:
    """Catches: trainer.accumulate_grad_batches not reaching the Trainer (8 optimizer steps instead of 4,
    different weights), and accumulated micro-batch losses summed instead of averaged (each step twice
    as large)."""
    from litvision.train import train

    full = train(
        compose_cfg(
            [*BASE, *LINEAR_SGD, "data.batch_size=64", "++trainer.limit_train_batches=4"], runs_dir / "a"
        )
    )
    halves = train(
        compose_cfg(
            [
                *BASE,
                *LINEAR_SGD,
                "data.batch_size=32",
                "++trainer.limit_train_batches=8",
                "trainer.accumulate_grad_batches=2",
            ],
            runs_dir / "b",
        )
    )
    assert full["global_step"] == 4 and halves["global_step"] == 4
    a, b = _weights(full), _weights(halves)
    import torch

    # The control: the same half batches without accumulation (8 steps) end elsewhere, so the
    # comparison below can tell accumulation from its absence.
    eight = train(
        compose_cfg(
            [*BASE, *LINEAR_SGD, "data.batch_size=32", "++trainer.limit_train_batches=8"], runs_dir / "c"
        )
    )
    assert eight["global_step"] == 8
    assert (a["net.head.weight"] - _weights(eight)["net.head.weight"]).abs().max() > 1e-3
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_gradient_clipping_bounds_the_norm_of_every_step(runs_dir: Path) -> None:
    """Catches: trainer.gradient_clip_val dropped on its way to the Trainer (the applied gradient norm
    equals the unclipped one, ~10x the limit here), and gradient_clip_algorithm=value used for norm."""
    from litvision.train import train

    clip = 0.05
    probe = runs_dir / "steps.json"
    train(
        compose_cfg(
            [
                *BASE,
                *LINEAR_SGD,
                "++trainer.limit_train_batches=3",
                f"trainer.gradient_clip_val={clip}",
                "+callbacks.probe._target_=mechanics_helpers.StepProbe",
                f"+callbacks.probe.path={probe}",
            ],
            runs_dir,
        )
    )
    steps = json.loads(probe.read_text())
    assert len(steps) == 3
    for s in steps:
        assert s["grad_norm_before_clip"] > 3 * clip, s  # clipping had something to do
        assert s["applied_grad_norm"] == pytest.approx(clip, rel=1e-3), s


def test_without_clipping_the_applied_gradient_is_the_raw_one(runs_dir: Path) -> None:
    """Catches: a probe that cannot tell clipped from unclipped steps (the test above would then pass
    with clipping off): with no clip value the update is lr x the raw gradient."""
    from litvision.train import train

    probe = runs_dir / "steps.json"
    train(
        compose_cfg(
            [
                *BASE,
                *LINEAR_SGD,
                "++trainer.limit_train_batches=2",
                "+callbacks.probe._target_=mechanics_helpers.StepProbe",
                f"+callbacks.probe.path={probe}",
            ],
            runs_dir,
        )
    )
    for s in json.loads(probe.read_text()):
        assert s["applied_grad_norm"] == pytest.approx(s["grad_norm_before_clip"], rel=1e-3), s


@pytest.mark.parametrize("channels_last", [True, False])
def test_first_conv_sees_channels_last_input_in_training(
    channels_last: bool, tmp_path: Path, runs_dir: Path
) -> None:
    """Catches: the channels-last forward pre-hook not registered (the first conv gets the loader's
    NCHW batch) and the weights left NCHW. RGB data: with one channel both layouts are the same."""
    from litvision.data.fixtures import fixture_maker
    from litvision.train import train

    seen = runs_dir / "seen.json"
    train(
        compose_cfg(
            [
                "model=small_cnn",
                "data=cifar10",
                *fixture_maker("cifar10")(tmp_path),
                "model.net.in_channels=3",
                "model.net.width=8",
                "trainer.max_epochs=1",
                "++trainer.limit_train_batches=2",
                "++trainer.limit_val_batches=1",
                "test=false",
                "logger=csv",
                *QUIET,
                f"channels_last={str(channels_last).lower()}",
                "+callbacks.first_conv._target_=mechanics_helpers.FirstConvInput",
                f"+callbacks.first_conv.path={seen}",
            ],
            runs_dir,
        )
    )
    calls = json.loads(seen.read_text())
    assert len(calls) == 2 and all(c["shape"][1] == 3 for c in calls)
    for c in calls:
        assert c["channels_last"] is channels_last, c
        assert c["contiguous_nchw"] is not channels_last, c
        assert c["weight_channels_last"] is channels_last, c


@pytest.mark.slow
def test_compile_true_trains_through_the_compiled_network(runs_dir: Path) -> None:
    """Catches: compile=true not reaching PerformanceSwitches, or the switch not compiling the network
    (Dynamo captures no graph), and compiling that renames the checkpoint's keys (`_orig_mod.`)."""
    import torch
    from torch._dynamo.utils import counters

    from litvision.train import train

    torch._dynamo.reset()
    counters.clear()
    summary = train(
        compose_cfg(
            [*BASE, *QUIET, "++trainer.limit_train_batches=2", "model.net.width=8", "compile=true"],
            runs_dir,
        )
    )
    assert counters["stats"]["unique_graphs"] >= 1, dict(counters["stats"])
    assert summary["global_step"] == 2
    state = _weights(summary)
    assert not [k for k in state if "_orig_mod" in k]
    torch._dynamo.reset()


def test_absolute_backbone_lr_is_scaled_when_it_joins_under_scale_lr(runs_dir: Path) -> None:
    """Each group's lr is its configured lr x the scale_lr factor, also for the backbone group the
    unfreeze schedule adds mid-run with an absolute `backbone_lr`.

    Catches: UnfreezeBackbone adding its absolute backbone_lr unscaled (the head at 2x its lr, the
    backbone at 1x: the ratio the user configured silently changes with the number of GPUs)."""
    import torch

    from litvision.train import train

    summary = train(
        compose_cfg(
            [
                *BASE,
                "trainer.max_epochs=2",
                "++trainer.limit_train_batches=1",
                "model.net.width=8",
                "model.scheduler.name=constant",
                "model.scheduler.warmup_epochs=0",
                "callbacks=[model_checkpoint,unfreeze]",
                "callbacks.unfreeze.unfreeze_at_epoch=1",
                "callbacks.unfreeze.backbone_lr=5e-4",
                "scale_lr=linear",
                "base_batch_size=32",  # batch 64 on 1 device: x2
            ],
            runs_dir,
        )
    )
    assert summary["lr_scale"] == pytest.approx(2.0)
    ckpt = torch.load(summary["last_checkpoint"], map_location="cpu", weights_only=True)
    lrs = {g["name"]: g["lr"] for g in ckpt["optimizer_states"][0]["param_groups"]}
    assert lrs == pytest.approx(
        {
            "default": 2 * 3e-3,
            "default/no_decay": 2 * 3e-3,
            "backbone": 2 * 5e-4,
            "backbone/no_decay": 2 * 5e-4,
        }
    )


def test_cudnn_autotuner_is_on_for_classification_only(runs_dir: Path, monkeypatch) -> None:
    """Catches: trainer.benchmark=null left to Lightning (False: cuDNN's default convolution kernels on
    every GPU classification run), and the autotuner on for detection (re-timed at each new image
    size) or under trainer.deterministic=true."""
    import torch

    from litvision.build import build_trainer

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)  # restored after
    cases = [
        (["experiment=digits_cnn"], True),
        (["experiment=resnet18_cifar10"], True),
        (["experiment=yolov1_shapes"], False),
        (["experiment=digits_cnn", "trainer.deterministic=true"], False),
        (["experiment=digits_cnn", "trainer.benchmark=false"], False),
    ]
    for overrides, expected in cases:
        torch.backends.cudnn.benchmark = not expected
        build_trainer(compose_cfg([*overrides, "logger=csv"], runs_dir), callbacks=[], loggers=[])
        assert torch.backends.cudnn.benchmark is expected, overrides
