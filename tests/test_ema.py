"""model.ema_decay: the EMA weights differ from the raw ones, are the ones validated and tested,
sit in the checkpoint's state_dict (raw ones beside them), load with weights_only=True, and
survive an interrupted run's resume bit-exactly (CPU, deterministic)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from conftest import ROOT, compose_cfg, run_cli, run_folders

COMMON = [
    "experiment=digits_cnn",
    "trainer.max_epochs=3",
    "trainer.limit_train_batches=6",
    "trainer.deterministic=true",
    "callbacks.early_stopping=null",
    "logger=csv",
    "model.ema_decay=0.8",
]


def _load(ckpt: str | Path) -> dict:
    return torch.load(ckpt, map_location="cpu", weights_only=True)


DECAY = 0.8


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The EMA run, with the raw weights after each of its 18 optimizer steps in `raw_steps`."""
    from litvision.train import train

    tmp = tmp_path_factory.mktemp("runs")
    steps = tmp / "raw_steps.pt"
    record = ["+callbacks.raw._target_=mechanics_helpers.RawWeightsPerStep", f"+callbacks.raw.path={steps}"]
    summary = train(compose_cfg([*COMMON, *record], tmp))
    return {**summary, "raw_steps": torch.load(steps, weights_only=True)}


def _replayed_ema(raw_steps: list[dict]) -> dict[str, torch.Tensor]:
    """The EMA of model.ema_decay=0.8 over the recorded raw weights, by its definition: the first step's
    weights, then ema = decay * ema + (1 - decay) * raw after each optimizer step (Polyak & Juditsky
    1992; torch.optim.swa_utils.get_ema_avg_fn)."""
    ema = {k: v.clone() for k, v in raw_steps[0].items()}
    for raw in raw_steps[1:]:
        for k in ema:
            ema[k] = DECAY * ema[k] + (1 - DECAY) * raw[k]
    return ema


def _test_loss(state: dict, ckpt: str) -> float:
    """Mean test cross-entropy of the task in `ckpt` with the weights `state`, computed by hand."""
    import torch.nn.functional as F

    from litvision.data.datasets.digits import DigitsDataModule
    from litvision.tasks.classification import ClassificationTask

    task = ClassificationTask.load_from_checkpoint(ckpt, map_location="cpu")
    task.load_state_dict(state)
    task.eval()
    dm = DigitsDataModule(**_load(ckpt)["datamodule_hyper_parameters"])
    dm.setup("test")
    total, n = 0.0, 0
    with torch.no_grad():
        for x, y in dm.test_dataloader():
            total += float(F.cross_entropy(task(x), y, reduction="sum"))
            n += len(y)
    return total / n


def test_ema_weights_differ_from_raw_and_are_the_ones_tested(ema_run: dict) -> None:
    """The checkpoint's weights are the EMA of model.ema_decay over the raw weights of every step, and
    they are the ones tested. Catches: test/summary run on the raw weights (e.g. the EMA callback
    dropped, or the checkpoint's state_dict holding the raw weights); the callback given 1 - decay, or
    Lightning's default decay (0.999) instead of model.ema_decay, or updating every other step."""
    last = _load(ema_run["last_checkpoint"])
    assert len(ema_run["raw_steps"]) == ema_run["global_step"] == 18
    replayed = _replayed_ema(ema_run["raw_steps"])
    for name, value in replayed.items():
        torch.testing.assert_close(last["state_dict"][name], value, rtol=0, atol=1e-6, msg=name)
    ckpt = _load(ema_run["best_checkpoint"])
    ema, raw = ckpt["state_dict"], ckpt["current_model_state"]
    assert ema.keys() == raw.keys()
    assert any(not torch.equal(ema[k], raw[k]) for k in ema if ema[k].is_floating_point())
    assert int(ckpt["averaging_state"]["n_averaged"]) > 1
    ema_loss = _test_loss(ema, ema_run["best_checkpoint"])
    raw_loss = _test_loss(raw, ema_run["best_checkpoint"])
    assert abs(ema_loss - raw_loss) > 1e-4
    assert ema_run["test"]["test/loss"] == pytest.approx(ema_loss, abs=1e-5)


def test_checkpoint_state_dict_holds_the_ema_weights_for_predict(ema_run: dict) -> None:
    """What predict and export load (load_from_checkpoint) is the EMA of the run, not its raw weights.
    Catches: load_from_checkpoint giving the raw weights (current_model_state), and EMA removed
    entirely (the loaded weights are then the last raw ones, not the replayed average)."""
    from litvision.tasks.classification import ClassificationTask

    ckpt = _load(ema_run["last_checkpoint"])
    task = ClassificationTask.load_from_checkpoint(ema_run["last_checkpoint"], map_location="cpu")
    loaded = dict(task.named_parameters())
    replayed, raw = _replayed_ema(ema_run["raw_steps"]), ema_run["raw_steps"][-1]
    for name, value in replayed.items():
        torch.testing.assert_close(loaded[name].detach(), value, rtol=0, atol=1e-6, msg=name)
    assert any(not torch.allclose(loaded[n].detach(), raw[n], atol=1e-4) for n in raw), "raw weights loaded"
    assert "current_model_state" in ckpt


@pytest.mark.slow
def test_resume_restores_ema_bit_exactly(tmp_path: Path) -> None:
    """Crash after epoch 1, resume last.ckpt with the real CLI: the EMA and raw weights, n_averaged and
    the callback's step equal an uninterrupted run's. Catches: EMA state not saved or not restored
    (e.g. the average restarting from the raw weights on resume); and ckpt_path dropped from
    trainer.fit (a restart ends with the same weights, but its fit starts at step 0, not 12; the
    replayed CrashAtEpochStart crashes it again, so the resume fails)."""
    from resume_helpers import fit_starts

    from litvision.train import train

    # monitor=null: a checkpoint every epoch. With a monitor, Lightning 2.6 rewrites last.ckpt only
    # when the top-k checkpoint is replaced too (pvnet#544), so last.ckpt may lag behind the stop.
    common = [*COMMON, "test=false", "callbacks.model_checkpoint.monitor=null"]
    full = train(compose_cfg(common, tmp_path / "full"))
    # Interrupted (crashed at the start of epoch 2): a finished run would be read-only.
    starts = tmp_path / "fit_starts.jsonl"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(
            compose_cfg(
                [
                    *common,
                    "+callbacks.crash._target_=conftest.CrashAtEpochStart",
                    "+callbacks.crash.epoch=2",
                    "+callbacks.fit_start._target_=resume_helpers.RecordFitStart",
                    f"+callbacks.fit_start.path={starts}",
                ],
                tmp_path / "part",
            )
        )
    (part_dir,) = run_folders(tmp_path / "part")
    part = {"run_dir": str(part_dir)}
    last = part_dir / "checkpoints" / "last.ckpt"
    assert _load(last)["epoch"] == 1
    run_cli(
        "litvision.train",
        *common,
        f"ckpt_path={last}",
        # This checkout's litvision and the tests' StopAfterEpoch.
        env={"PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])},
        check=True,
    )
    resumed = json.loads((Path(part["run_dir"]) / "summary.json").read_text())
    assert resumed["global_step"] == full["global_step"]
    assert [(s["global_step"], s["epoch"]) for s in fit_starts(starts)] == [(0, 0), (12, 2)]
    a, b = _load(full["last_checkpoint"]), _load(last)
    for key in ("state_dict", "current_model_state", "averaging_state"):
        assert a[key].keys() == b[key].keys()
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), (key, k)
    assert a["callbacks"]["EMA"] == b["callbacks"]["EMA"]


def test_ema_decay_out_of_range_is_one_line(tmp_path: Path) -> None:
    """Catches: model.ema_decay=1.5 accepted or failing with a traceback; 1.0 (an average that never moves)
    or 0.0 (no average: the raw weights) accepted, as a bound written `<= 1` or `>= 0` would."""
    from litvision.build import build_task
    from litvision.errors import UserError
    from litvision.tasks.options import check_training_options

    for bad in ("1.5", "1.0", "0.0", "-0.5"):
        cfg = compose_cfg([f"model.ema_decay={bad}"], tmp_path)
        for check in (check_training_options, build_task):
            with pytest.raises(UserError, match=rf"model\.ema_decay={bad}") as e:
                check(cfg)
            assert "\n" not in str(e.value)


def test_detection_checkpoint_carries_ema_and_raw_weights(tmp_path: Path) -> None:
    """Catches: model.ema_decay ignored by the detection task (no average, no raw weights kept)."""
    from litvision.data.fixtures import fixture_maker
    from litvision.train import train

    data = fixture_maker("shapes_voc")(tmp_path / "data")
    summary = train(
        compose_cfg(
            [
                "experiment=yolov1_shapes",
                *data,
                "trainer.max_epochs=1",
                "trainer.limit_train_batches=3",
                "trainer.limit_val_batches=1",
                "trainer.limit_test_batches=1",
                "logger=csv",
                "model.ema_decay=0.5",
            ],
            tmp_path / "runs",
        )
    )
    ckpt = _load(summary["last_checkpoint"])
    ema, raw = ckpt["state_dict"], ckpt["current_model_state"]
    assert int(ckpt["averaging_state"]["n_averaged"]) == 3
    assert any(not torch.equal(ema[k], raw[k]) for k in ema if ema[k].is_floating_point())


def test_fit_then_test_and_predict_in_one_trainer_use_the_ema_weights(tmp_path: Path) -> None:
    """A notebook's path: fit, then `trainer.test` and `trainer.predict` on the best checkpoint with the
    same Trainer: both see the best checkpoint's EMA weights (its state_dict, not current_model_state),
    with test_tta applied (hflip: the mean of the two views' probabilities). The EMA subclass's swaps for
    test and predict were removed: Lightning does not call the callback's on_load_checkpoint there, so
    they could only put the last step's live average in place of the best checkpoint's.
    Catches: predict_step ignoring test_tta, and the test step applying it to the wrong stage."""
    import torch.nn.functional as F

    from litvision.build import build_datamodule, build_task, build_trainer
    from litvision.tasks.classification import ClassificationTask

    cfg = compose_cfg(
        [*COMMON, "trainer.max_epochs=2", "test_tta=hflip", "callbacks.rich_progress_bar=null"], tmp_path
    )
    dm, task = build_datamodule(cfg), build_task(cfg)
    trainer = build_trainer(cfg)
    trainer.fit(task, datamodule=dm)
    best = trainer.checkpoint_callback.best_model_path
    [tested] = trainer.test(task, datamodule=dm, ckpt_path="best", verbose=False)
    predicted = torch.cat(trainer.predict(task, dataloaders=dm.test_dataloader(), ckpt_path="best"))

    ckpt = _load(best)
    net = ClassificationTask.load_from_checkpoint(best, map_location="cpu").eval()
    x = torch.cat([batch[0] for batch in dm.test_dataloader()])
    y = torch.cat([batch[1] for batch in dm.test_dataloader()])

    def hflip_probs(state: dict) -> torch.Tensor:
        net.load_state_dict(state)
        with torch.no_grad():
            return (F.softmax(net(x), dim=-1) + F.softmax(net(x.flip(-1)), dim=-1)) / 2

    ema, raw = hflip_probs(ckpt["state_dict"]), hflip_probs(ckpt["current_model_state"])
    ema_loss, raw_loss = (float(F.nll_loss(p.log(), y)) for p in (ema, raw))
    assert abs(ema_loss - raw_loss) > 1e-4
    assert tested["test/loss"] == pytest.approx(ema_loss, abs=1e-5)
    torch.testing.assert_close(predicted, ema, rtol=0, atol=1e-5)
