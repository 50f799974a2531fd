"""Fine-tuning through the config path: freezing, per-group learning rates, layer decay,
the unfreeze schedule, and a real transfer between digit subsets.

Everything runs Lightning's real Trainer on scikit-learn's digits with a small CNN.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from conftest import compose_cfg
from lightning.pytorch.callbacks import Callback

from litvision.errors import UserError

TINY = [
    "experiment=digits_cnn",
    "debug=limit",
    "model.net.width=8",
    "logger=csv",
    "model.scheduler.name=constant",
    "model.scheduler.warmup_epochs=0",
]


class Probe(Callback):
    """Records BatchNorm modes during training steps, optimizer groups, and weights after each epoch."""

    def __init__(self) -> None:
        self.bn_training: dict[int, dict[str, bool]] = {}
        self.groups: dict[int, dict[str, float]] = {}
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        e = trainer.current_epoch
        self.bn_training[e] = {
            n: m.training for n, m in pl_module.net.named_modules() if isinstance(m, torch.nn.BatchNorm2d)
        }
        self.groups[e] = {g["name"]: g["lr"] for g in trainer.optimizers[0].param_groups}

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.weights[trainer.current_epoch] = {k: v.clone() for k, v in pl_module.net.state_dict().items()}


def _fit(overrides: list[str], runs_dir: Path) -> tuple[object, Probe, dict[str, torch.Tensor], object]:
    from litvision.build import build_callbacks, build_datamodule, build_loggers, build_task, build_trainer

    cfg = compose_cfg([*TINY, *overrides], runs_dir)
    task = build_task(cfg)
    before = {k: v.clone() for k, v in task.net.state_dict().items()}
    probe = Probe()
    trainer = build_trainer(cfg, callbacks=[*build_callbacks(cfg), probe], loggers=build_loggers(cfg))
    trainer.fit(task, datamodule=build_datamodule(cfg))
    return task, probe, before, trainer


def test_freeze_prefixes_and_group_learning_rates(runs_dir: Path) -> None:
    task, probe, before, trainer = _fit(
        [
            "callbacks=none",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=3",
            "trainer.limit_val_batches=1",
            # Keep the last conv block and the head trainable; the head learns 10x faster.
            "model.freeze=[features.4,head]",
            "model.param_groups={head: {prefixes: [head], lr: 0.03}}",
        ],
        runs_dir,
    )
    after = task.net.state_dict()
    frozen = [k for k in after if k.startswith(("features.0.", "features.1.", "features.3."))]
    # Parameters and BatchNorm running statistics of the frozen part: bit-identical after real steps.
    assert any("running_mean" in k for k in frozen) and any("num_batches_tracked" in k for k in frozen)
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    for k in ("features.4.0.weight", "features.4.1.running_mean", "head.1.weight"):
        assert not torch.equal(before[k], after[k]), k
    # Frozen BatchNorm layers stay in eval mode although Lightning calls .train() each epoch.
    assert probe.bn_training[0] == {
        "features.0.1": False,
        "features.1.1": False,
        "features.3.1": False,
        "features.4.1": True,
    }
    # Named groups with the configured rates; frozen parameters are not in the optimizer.
    assert probe.groups[0] == {"head": 0.03, "head/no_decay": 0.03, "default": 3e-3, "default/no_decay": 3e-3}
    in_opt = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
    assert {n for n, p in task.net.named_parameters() if id(p) in in_opt} == {
        n for n, _ in task.net.named_parameters() if n.startswith(("features.4.", "head."))
    }


def test_freeze_errors(runs_dir: Path) -> None:
    from litvision.build import build_task

    with pytest.raises(UserError, match=r"model.freeze lists \['layer9'\], which match no parameter"):
        build_task(compose_cfg([*TINY, "model.freeze=[layer9]"], runs_dir))
    with pytest.raises(UserError, match="model.freeze='head'"):
        build_task(compose_cfg([*TINY, "model.freeze=head"], runs_dir))
    with pytest.raises(UserError, match="model.layer_decay and model.param_groups"):
        build_task(
            compose_cfg(
                [*TINY, "model.layer_decay=0.7", "model.param_groups={head: {prefixes: [head]}}"], runs_dir
            )
        )


def test_unfreeze_schedule_gives_the_backbone_its_own_rate(runs_dir: Path, capfd) -> None:
    """Also catches: the unfreeze not said on the console at its epoch (one `note:` line)."""
    task, probe, before, trainer = _fit(
        [
            "callbacks=[lr_monitor,unfreeze]",
            "callbacks.unfreeze.unfreeze_at_epoch=1",
            "callbacks.unfreeze.backbone_lr=5e-4",
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=1",
            "trainer.limit_val_batches=1",
            "trainer.log_every_n_steps=1",
            "model.optimizer.weight_decay=0",
        ],
        runs_dir,
    )
    backbone = [k for k in before if k.startswith("features.")]
    # Epoch 0: only the head trains; frozen BatchNorm layers are in eval mode.
    assert all(torch.equal(before[k], probe.weights[0][k]) for k in backbone)
    assert not torch.equal(before["head.1.weight"], probe.weights[0]["head.1.weight"])
    assert set(probe.bn_training[0].values()) == {False}
    assert probe.groups[0] == {"default": 3e-3, "default/no_decay": 3e-3}
    # Epoch 1: the backbone joins as its own named group, at its own rate, and its BatchNorm layers train.
    assert probe.groups[1] == {
        "default": 3e-3,
        "default/no_decay": 3e-3,
        "backbone": 5e-4,
        "backbone/no_decay": 5e-4,
    }
    assert set(probe.bn_training[1].values()) == {True}
    # One Adam(W) step moves each weight by lr * m/sqrt(v) = lr * sign(grad): exactly the backbone's 5e-4.
    step = (probe.weights[1]["features.0.0.weight"] - probe.weights[0]["features.0.0.weight"]).abs().max()
    assert step.item() == pytest.approx(5e-4, rel=1e-3)
    with open(Path(trainer.loggers[0].log_dir) / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    logged = [float(r["lr-AdamW/backbone"]) for r in rows if r.get("lr-AdamW/backbone")]
    assert logged and set(logged) == {5e-4}
    notes = [line for line in capfd.readouterr().out.splitlines() if "unfroze" in line]
    assert len(notes) == 1 and notes[0].startswith("note: epoch 1: unfroze the backbone (features"), notes
    assert "at lr 0.0005" in notes[0], notes


def test_unfreeze_schedule_resumes_after_the_unfreeze(runs_dir: Path) -> None:
    """Resume from the end of the unfreeze epoch: the fit starts there (step 4, four named groups)
    and every group's learning rate after the resumed epoch equals an uninterrupted run's.
    Catches: ckpt_path dropped from trainer.fit (the fit starts at step 0), and the backbone groups
    off the task's schedule after a resume (UnfreezeBackbone.on_fit_start appending a constant
    multiplier `lambda step: 1.0` instead of the schedule: backbone lr 3e-4 instead of 4.6e-5)."""
    from resume_helpers import fit_starts

    from litvision.train import train

    starts = runs_dir / "fit_starts.jsonl"
    base = [
        *TINY,
        "callbacks=[model_checkpoint,unfreeze]",
        "callbacks.unfreeze.unfreeze_at_epoch=1",
        "model.scheduler.name=cosine",
        "callbacks.model_checkpoint.save_top_k=-1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "test=false",
    ]
    probe = [
        "+callbacks.fit_start._target_=resume_helpers.RecordFitStart",
        f"+callbacks.fit_start.path={starts}",
    ]
    # 4 epochs of 2 steps; the interrupted run crashes at the start of epoch 2, mid-schedule.
    base.append("trainer.max_epochs=4")
    ref = train(compose_cfg(base, runs_dir / "ref"))
    crash = ["+callbacks.crash._target_=conftest.CrashAtEpochStart", "+callbacks.crash.epoch=2"]
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(compose_cfg([*base, *crash], runs_dir / "part"))
    # Every epoch's checkpoint is kept: resume from the end of the unfreeze epoch (1).
    (epoch1,) = (runs_dir / "part").rglob("best-epoch001.ckpt")
    resumed = train(compose_cfg([*base, *probe, f"ckpt_path={epoch1}"], runs_dir / "resumed"))
    assert resumed["global_step"] == 8
    before = torch.load(epoch1, map_location="cpu", weights_only=False)
    epoch2 = Path(resumed["run_dir"]) / "checkpoints" / "best-epoch002.ckpt"
    after = torch.load(epoch2, map_location="cpu", weights_only=False)
    assert (before["epoch"], after["epoch"]) == (1, 2)
    # Resumed, not restarted: the fit starts at the checkpoint's step with its optimizer groups.
    (start,) = fit_starts(starts)
    saved = {g["name"]: g["lr"] for g in before["optimizer_states"][0]["param_groups"]}
    assert (start["global_step"], start["epoch"]) == (4, 2)
    assert start["lrs"] == pytest.approx(saved) and len(saved) == 4
    groups = [g["name"] for g in after["optimizer_states"][0]["param_groups"]]
    assert groups == ["default", "default/no_decay", "backbone", "backbone/no_decay"]
    # Each group's rate after each resumed epoch: the uninterrupted run's, on the cosine schedule,
    # the backbone at lr_scale (0.1) x the head's.
    for epoch in (2, 3):
        name = f"best-epoch{epoch:03d}.ckpt"
        got, expected = (
            torch.load(Path(r["run_dir"]) / "checkpoints" / name, map_location="cpu", weights_only=False)
            for r in (resumed, ref)
        )
        lrs = {g["name"]: g["lr"] for g in got["optimizer_states"][0]["param_groups"]}
        assert lrs == pytest.approx(
            {g["name"]: g["lr"] for g in expected["optimizer_states"][0]["param_groups"]}
        )
        assert lrs["backbone"] == pytest.approx(0.1 * lrs["default"]) and lrs["default"] != saved["default"]
    # The restored backbone groups train after the resume, and follow the task's schedule (one lambda per group).
    key = "net.features.0.0.weight"
    assert not torch.equal(before["state_dict"][key], after["state_dict"][key])
    assert len(after["lr_schedulers"][0]["base_lrs"]) == 4


def test_layer_decay_groups_are_named_and_scaled() -> None:
    from litvision.models.classification.timm_models import timm_model
    from litvision.tasks.finetune import layer_decay_param_groups

    vit = timm_model(
        "vit_small_patch16_224", num_classes=5, img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2
    )
    groups = {
        g["name"]: g for g in layer_decay_param_groups(vit, lr=1e-3, weight_decay=0.05, layer_decay=0.5)
    }
    # embeddings (0), block 0 (1), block 1 (2), final norm + head (3): lr * 0.5 ** (3 - layer)
    lrs = {name: round(g["lr"], 12) for name, g in groups.items()}
    assert lrs == {
        "layer_00": 1.25e-4,
        "layer_00/no_decay": 1.25e-4,
        "layer_01": 2.5e-4,
        "layer_01/no_decay": 2.5e-4,
        "layer_02": 5e-4,
        "layer_02/no_decay": 5e-4,
        "head": 1e-3,
        "head/no_decay": 1e-3,
    }
    names = {id(p): n for n, p in vit.named_parameters()}
    embed_no_decay = {names[id(p)] for p in groups["layer_00/no_decay"]["params"]}
    assert {"cls_token", "pos_embed", "patch_embed.proj.bias"} <= embed_no_decay
    assert groups["layer_00/no_decay"]["weight_decay"] == 0.0 and groups["head"]["weight_decay"] == 0.05
    assert {names[id(p)] for p in groups["head"]["params"]} == {"head.weight"}


@pytest.mark.slow
def test_pretrained_frozen_backbone_beats_scratch_on_new_digits(runs_dir: Path) -> None:
    """Pretrain on digits 0-4, then learn 5-9 from 3% of their training images (about 17)."""
    from litvision.train import train

    common = [
        "experiment=digits_cnn",
        "logger=csv",
        "callbacks=[model_checkpoint]",
        "data.num_classes=5",
        "model.net.width=64",
        "model.net.pool_size=2",
    ]
    pre = train(
        compose_cfg([*common, "+data.classes=[0,1,2,3,4]", "trainer.max_epochs=2", "test=false"], runs_dir)
    )
    assert pre["best_val"]["val/acc"] > 0.95
    small = [
        "+data.classes=[5,6,7,8,9]",
        "+data.train_fraction=0.03",
        "data.batch_size=8",
        "trainer.max_epochs=3",
        "model.optimizer.lr=0.03",
        "model.scheduler.name=constant",
        "model.scheduler.warmup_epochs=0",
    ]
    transfer = train(
        compose_cfg(
            [*common, *small, f"model.net.weights={pre['best_checkpoint']}", "model.freeze=backbone"],
            runs_dir,
        )
    )
    scratch = train(compose_cfg([*common, *small], runs_dir))
    t, s = transfer["test"]["test/acc"], scratch["test"]["test/acc"]
    print(
        f"\ndigits 5-9 from 3% of the training set, 3 epochs: frozen 0-4 backbone {t:.3f}, from scratch {s:.3f}"
    )
    assert transfer["global_step"] == scratch["global_step"]
    # The fine-tuned checkpoint rebuilds without the weights it started from.
    hparams = torch.load(transfer["best_checkpoint"], map_location="cpu", weights_only=True)[
        "hyper_parameters"
    ]
    assert hparams["net"]["weights"] is None and hparams["freeze"] == "backbone"
    assert t > s + 0.1, (t, s)
