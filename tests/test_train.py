"""The default experiment end to end: accuracy, run folder contract, eval of its checkpoint, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import compose_cfg, run_cli, run_folders


@pytest.fixture(scope="module")
def trained(real_runs) -> dict:
    """digits_cnn exactly as `make train` runs it: the real-run tier's "recipe" run, shared with
    test_tuning.py (tests/real_runs.py)."""
    return real_runs.summary("recipe")


@pytest.mark.slow
def test_digits_cnn_reaches_97_percent(trained: dict) -> None:
    assert trained["test"]["test/acc"] >= 0.97, trained["test"]
    assert trained["best_val"]["val/acc"] >= 0.97


@pytest.mark.slow
def test_run_folder_contract(trained: dict) -> None:
    run = Path(trained["run_dir"])
    assert (run / "config.yaml").is_file()
    assert (
        Path(trained["best_checkpoint"]).is_file()
        and Path(trained["best_checkpoint"]).parent == run / "checkpoints"
    )
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "csv" / "metrics.csv").read_text().startswith("epoch,")
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert (run / "media" / "test_confusion_matrix.png").stat().st_size > 1000
    summary = json.loads((run / "summary.json").read_text())
    for key in ("experiment", "seed", "best_val", "test", "best_checkpoint", "wall_time_s", "git_commit"):
        assert key in summary, key
    assert summary["experiment"] == "digits_cnn" and summary["seed"] == 42
    # The best checkpoint is the one with the best monitored value.
    assert summary["best_val"]["val/acc"] == pytest.approx(summary["best_score"], abs=1e-6)


@pytest.mark.slow
def test_eval_reproduces_training_test_metrics(trained: dict, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    proc = run_cli(
        "litvision.eval",
        "experiment=digits_cnn",
        f"ckpt_path={trained['best_checkpoint']}",
        f"paths.runs_dir={runs}",
        check=True,
    )
    (eval_run,) = run_folders(runs)
    summary = json.loads((eval_run / "summary.json").read_text())
    assert summary["task"] == "eval"
    for k, v in trained["test"].items():
        assert summary["test"][k] == pytest.approx(v, abs=1e-6), k
    assert "test" in proc.stdout


def _state(ckpt: Path) -> dict:
    return torch.load(ckpt, map_location="cpu", weights_only=True)


def test_resume_from_last_ckpt_is_bit_exact(runs_dir: Path) -> None:
    """Crash after epoch 1, resume from last.ckpt with the real CLI: same weights as an uninterrupted run.

    A restart would also end with those weights (deterministic, same seed), so "resumed" is checked
    directly: the second fit starts at step 12 / epoch 2, resume-1.yaml names last.ckpt, and no
    epoch appears twice in metrics.csv.
    Catches: ckpt_path dropped from trainer.fit (the second fit starts at step 0; epochs 0-1 twice;
    the replayed CrashAtEpochStart, which spares only a run given a checkpoint, crashes it again)."""
    from collections import Counter

    from resume_helpers import fit_starts

    from litvision.train import train

    common = [
        "experiment=digits_cnn",
        "trainer.max_epochs=3",
        "trainer.limit_train_batches=6",
        "trainer.deterministic=true",
        "callbacks.early_stopping=null",
        "logger=csv",
    ]
    full = train(compose_cfg(common, runs_dir / "full"))

    # Crashes at the start of epoch 2: epochs 0 and 1 are done, last.ckpt is the end of epoch 1.
    starts = runs_dir / "fit_starts.jsonl"
    probe = [
        "+callbacks.fit_start._target_=resume_helpers.RecordFitStart",
        f"+callbacks.fit_start.path={starts}",
    ]
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(
            compose_cfg(
                [
                    *common,
                    "+callbacks.crash._target_=conftest.CrashAtEpochStart",
                    "+callbacks.crash.epoch=2",
                    *probe,
                ],
                runs_dir / "part",
            )
        )
    (run,) = run_folders(runs_dir / "part")
    assert not (run / "summary.json").exists()
    last = run / "checkpoints" / "last.ckpt"
    assert _state(last)["epoch"] == 1

    run_cli(
        "litvision.train",
        f"ckpt_path={last}",
        f"paths.runs_dir={runs_dir / 'resumed'}",
        env={"PYTHONPATH": str(Path(__file__).parent)},
        check=True,
    )
    # Resuming continues the interrupted run's folder; no new run folder is made.
    assert not (runs_dir / "resumed").exists()
    resumed = json.loads((run / "summary.json").read_text())
    assert resumed["global_step"] == full["global_step"] and resumed["run_dir"] == str(run)
    assert [(s["global_step"], s["epoch"]) for s in fit_starts(starts)] == [(0, 0), (12, 2)]
    assert "checkpoints/last.ckpt" in (run / "resume-1.yaml").read_text()
    # The resumed run appends to the interrupted run's metrics instead of replacing them.
    import csv

    text = (run / "csv" / "metrics.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    val_epochs = [r["epoch"] for r in rows if r.get("val/acc")]
    # Every epoch validated once; the best checkpoint's re-validation after fit adds one row at epoch 3.
    assert Counter(val_epochs) == {"0": 1, "1": 1, "2": 1, "3": 1}, (
        f"an epoch was trained twice: {val_epochs}"
    )

    a, b = _state(Path(full["last_checkpoint"])), _state(last)
    assert a["global_step"] == b["global_step"] and a["epoch"] == b["epoch"]
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), f"{k} differs after resume"
    assert a["lr_schedulers"][0]["last_epoch"] == b["lr_schedulers"][0]["last_epoch"]
    for sa, sb in zip(a["optimizer_states"][0]["state"].values(), b["optimizer_states"][0]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"])
