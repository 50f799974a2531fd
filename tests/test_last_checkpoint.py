"""`last.ckpt` is always the latest state: a run SIGKILLed epochs after its best epoch resumes where it
stopped, not at the best epoch; `fast_dev_run` writes no checkpoint."""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path

import pytest
from conftest import HELPERS_ENV, compose_cfg, run_cli, run_folders

# Subprocesses import tests/fault_helpers.py and litvision from this checkout.

# val/loss falls every epoch here, so with mode=max the best epoch is epoch 0 and Lightning's
# save_last (tied to a new best) would leave last.ckpt at epoch 0 for the rest of the run.
STALLS = [
    "experiment=digits_cnn",
    "trainer.max_epochs=6",
    "++trainer.limit_train_batches=4",
    "++trainer.limit_val_batches=2",
    "trainer.deterministic=true",
    "logger=csv",
    "test=false",
    "monitor=val/loss",
    "monitor_mode=max",
    "callbacks.rich_progress_bar=null",
    "callbacks.model_summary=null",
    "callbacks.sample_grid=null",
]
# 4 steps per epoch: SIGKILL before step 18, i.e. mid-epoch 4, three epochs after the best one.
KILL = ["+callbacks.kill._target_=fault_helpers.KillAtStep", "+callbacks.kill.step=18"]


def _ckpt(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def _train_rows(run: Path) -> list[tuple[str, ...]]:
    """(epoch, step, train/acc, train/loss) of every row that logs a training metric."""
    with open(run / "csv" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [
        (r["epoch"], r["step"], r.get("train/acc", ""), r.get("train/loss", ""))
        for r in rows
        if r.get("train/acc") or r.get("train/loss")
    ]


@pytest.mark.slow  # three short trainings, two of them separate processes
def test_sigkill_three_epochs_after_the_best_resumes_at_the_kill_not_at_the_best(runs_dir: Path) -> None:
    """Breaks if last.ckpt is written only when the monitored metric improves (Lightning's save_last):
    last.ckpt then holds epoch 0, and the resume re-trains epochs 1-3 (their rows appear twice)."""
    import torch

    from litvision.train import train

    ref = train(compose_cfg([*STALLS, f"hydra.run.dir={runs_dir / 'ref'}"], runs_dir))
    assert Path(ref["best_checkpoint"]).name == "best-epoch000.ckpt", ref  # the premise: best is epoch 0
    assert ref["last_checkpoint"] == str(runs_dir / "ref" / "checkpoints" / "last.ckpt")

    killed = run_cli(
        "litvision.train", *STALLS, *KILL, f"paths.runs_dir={runs_dir / 'k'}", env=HELPERS_ENV, timeout=600
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    (run,) = run_folders(runs_dir / "k")
    last = run / "checkpoints" / "last.ckpt"
    state = _ckpt(last)
    assert (state["epoch"], state["global_step"]) == (3, 16)  # the last finished epoch, not the best one
    assert not (run / "summary.json").exists() and not list(run.glob("checkpoints/.*tmp*"))

    resumed = run_cli("litvision.train", f"ckpt_path={last}", *STALLS, *KILL, env=HELPERS_ENV, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert run_folders(runs_dir / "k") == [run]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["global_step"] == ref["global_step"] == 24
    assert summary["last_checkpoint"] == str(last)

    a, b = _ckpt(Path(ref["last_checkpoint"])), _ckpt(last)
    assert (a["epoch"], a["global_step"]) == (b["epoch"], b["global_step"]) == (5, 24)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), f"{k} differs after kill -9 and resume"

    # No epoch trained twice, none lost: the same training rows, once each, as the uninterrupted run.
    rows = _train_rows(run)
    assert rows == _train_rows(runs_dir / "ref")
    epoch_rows = [r[0] for r in rows if r[2]]
    assert epoch_rows == [str(e) for e in range(6)], epoch_rows


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        # Every 3 steps (4 per epoch): at steps 3 and 6 mid-epoch, and at the epoch ends (4, 8).
        (["callbacks.model_checkpoint.last_every_n_train_steps=3"], [None, None, None, 3, 4, 4, 6, 6]),
        # Validation every 2 epochs: epoch 0 has none, last.ckpt is still written at its end.
        (["trainer.check_val_every_n_epoch=2"], [None, None, None, None, 4, 4, 4, 4]),
    ],
    ids=["every_3_steps", "val_every_2_epochs"],
)
def test_when_last_ckpt_is_written(extra: list[str], expected: list, runs_dir: Path) -> None:
    """Breaks if `last_every_n_train_steps` is ignored (step 3 and 6 missing), or if an epoch without
    validation skips its last.ckpt (step 4 missing)."""
    from litvision.train import train

    probe = runs_dir / "probe.jsonl"
    cfg = compose_cfg(
        [
            *STALLS,
            "trainer.max_epochs=2",
            *extra,
            "+callbacks.probe._target_=fault_helpers.RecordLastCheckpoint",
            f"+callbacks.probe.path={probe}",
        ],
        runs_dir,
    )
    train(cfg)
    # Before each training step: [steps done, global_step stored in last.ckpt].
    seen = [json.loads(line) for line in probe.read_text().splitlines()]
    assert seen == [[step, stored] for step, stored in enumerate(expected)], seen


def test_max_steps_mid_epoch_leaves_last_ckpt_at_the_final_step(runs_dir: Path) -> None:
    """`trainer.max_steps=6` stops in the middle of epoch 1 (4 steps an epoch): last.ckpt holds step 6,
    the state a resume or an extension starts from, and the summary names it.
    The end-of-training write that used to back this up never wrote (Lightning ends every epoch it
    starts with on_train_epoch_end) and is removed. Catches: the epoch-end write skipped when the
    epoch was cut short (`is_last_batch` required: last.ckpt holds step 4), and the epoch-end
    write dropped (no last.ckpt at all)."""
    from litvision.train import train

    summary = train(compose_cfg([*STALLS, "trainer.max_steps=6", "trainer.max_epochs=3"], runs_dir))
    last = Path(summary["last_checkpoint"])
    assert last.name == "last.ckpt" and summary["global_step"] == 6
    assert _ckpt(last)["global_step"] == 6


def test_fast_dev_run_writes_no_checkpoint(runs_dir: Path) -> None:
    """Breaks if Lightning's save_last is back on: its on_train_end writes last.ckpt even under fast_dev_run."""
    from litvision.train import train

    summary = train(compose_cfg(["experiment=digits_cnn", "debug=fast_dev_run", "test=false"], runs_dir))
    run = Path(summary["run_dir"])
    assert run.is_dir()
    assert not list(run.rglob("*.ckpt")), list(run.rglob("*.ckpt"))
    assert summary["last_checkpoint"] is None and summary["best_checkpoint"] is None


@pytest.mark.slow  # two short trainings, one killed, and its resume
def test_sigkill_mid_epoch_loses_at_most_n_steps(runs_dir: Path) -> None:
    """last.ckpt every 3 steps; SIGKILL before step 7 (epoch 1, batch 3 of 4): last.ckpt holds step 6 and
    the resume (which skips the 2 batches of epoch 1 already trained on) ends with the uninterrupted
    weights. Breaks if step writes are off (resume from step 4 still matches, but last.ckpt is at 4)."""
    import torch

    from litvision.train import train

    args = [*STALLS, "trainer.max_epochs=2", "callbacks.model_checkpoint.last_every_n_train_steps=3"]
    ref = train(compose_cfg([*args, f"hydra.run.dir={runs_dir / 'ref'}"], runs_dir))
    kill = ["+callbacks.kill._target_=fault_helpers.KillAtStep", "+callbacks.kill.step=7"]
    killed = run_cli(
        "litvision.train", *args, *kill, f"paths.runs_dir={runs_dir / 'k'}", env=HELPERS_ENV, timeout=600
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    (run,) = run_folders(runs_dir / "k")
    last = run / "checkpoints" / "last.ckpt"
    assert _ckpt(last)["global_step"] == 6
    resumed = run_cli("litvision.train", f"ckpt_path={last}", *args, *kill, env=HELPERS_ENV, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _ckpt(Path(ref["last_checkpoint"])), _ckpt(last)
    assert a["global_step"] == b["global_step"] == 8
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), f"{k} differs after a mid-epoch kill"
    # Each training row once. (Values of the killed epoch's epoch-level train/acc differ: torchmetrics
    # state is not in the checkpoint, so it aggregates only the batches after the resume.)
    assert [r[:2] for r in _train_rows(run)] == [r[:2] for r in _train_rows(runs_dir / "ref")]


@pytest.mark.parametrize("bad", ["-3", "abc", "1.5"])
def test_bad_last_every_n_train_steps_is_one_line(bad: str, runs_dir: Path) -> None:
    """Breaks if the value reaches Lightning/int() unchecked (a ValueError traceback, or a silent no-op)."""
    from litvision.build import build_callbacks
    from litvision.errors import UserError

    cfg = compose_cfg(
        ["experiment=digits_cnn", f"callbacks.model_checkpoint.last_every_n_train_steps={bad}"], runs_dir
    )
    with pytest.raises(UserError, match="last_every_n_train_steps=.* is not a number of steps"):
        build_callbacks(cfg)
