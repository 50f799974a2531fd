"""`run_tune`: Lightning's batch-size and LR finders on digits_cnn write their plot and findings;
DDP configs are refused in one line before anything is built."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import compose_cfg

from litvision.errors import UserError
from litvision.tuning import LR_PLOT, check_tunable, run_tune

FAST = ["+tune.num_training=24", "+tune.max_trials=2", "+tune.steps_per_trial=2"]


def test_tune_writes_plot_and_suggestion(runs_dir: Path, tmp_path: Path) -> None:
    """Catches a missing plot, a suggestion outside the swept range, or a batch size not doubled."""
    cfg = compose_cfg(["experiment=digits_cnn", *FAST], runs_dir)
    run = tmp_path / "run"
    run.mkdir()
    out = run_tune(cfg, run)
    assert (run / LR_PLOT).stat().st_size > 5000
    lr = out["lr_find"]
    assert lr["plot"] == str(run / LR_PLOT) and lr["steps"] == 24
    assert 1e-7 < lr["suggestion"] < 1.0
    assert lr["configured_lr"] == 3e-3
    # Two trials from 64 on a training split of ~1,100 digits: 64 ran, 128 ran.
    assert out["batch_size"]["initial"] == 64 and out["batch_size"]["found"] == 128
    assert lr["batch_size"] == 128  # the LR sweep ran at the batch size found
    assert out["overrides"] == f"data.batch_size=128 model.optimizer.lr={lr['suggestion']:.3g}"
    # The finders' temporary checkpoints are written in the run folder and removed.
    assert not list(run.rglob("*.ckpt")) and not list(runs_dir.rglob("*.ckpt"))


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["trainer=ddp_cpu"], "trainer.devices=2"),
        (["trainer.devices=4"], "trainer.devices=4"),
        (["trainer.num_nodes=2"], "trainer.num_nodes=2"),
        (["trainer.strategy=ddp"], "trainer.strategy=ddp"),
        (["trainer.devices=-1"], "trainer.devices=-1"),
    ],
)
def test_ddp_is_refused_in_one_line(overrides: list[str], key: str, runs_dir: Path, tmp_path: Path) -> None:
    """Catches a DDP config reaching Lightning's single-process finders, or a folder written first."""
    cfg = compose_cfg(["experiment=digits_cnn", *overrides], runs_dir)
    run = tmp_path / "run"
    with pytest.raises(UserError, match="tune runs on one device") as e:
        run_tune(cfg, run)
    assert key in str(e.value) and "\n" not in str(e.value)
    assert not run.exists()


def test_bad_tune_options_are_one_line(runs_dir: Path) -> None:
    with pytest.raises(UserError, match="tune.max_lr=1e-09"):
        check_tunable(compose_cfg(["experiment=digits_cnn", "+tune.max_lr=1e-9"], runs_dir))
    with pytest.raises(UserError, match="tune.lr is not a tune option"):
        check_tunable(compose_cfg(["experiment=digits_cnn", "+tune.lr=0.1"], runs_dir))
    with pytest.raises(UserError, match="tune.mode='linear' must be power or binsearch"):
        check_tunable(compose_cfg(["experiment=digits_cnn", "+tune.mode=linear"], runs_dir))
