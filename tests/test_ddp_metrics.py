"""Metric reduction under real DDP (2 gloo processes on the CPU): the val/acc a run logs is the
accuracy over the whole validation split, not over rank 0's half of it."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from conftest import HELPERS_ENV, run_cli, run_folders


def _correct_on_val(run: Path):
    """Per validation sample: is the run's last checkpoint right? (one process, no DDP)."""
    import torch
    from omegaconf import OmegaConf

    from litvision.build import build_datamodule, build_task

    cfg = OmegaConf.load(run / "config.yaml")
    dm, task = build_datamodule(cfg), build_task(cfg)
    dm.setup("fit")
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    task.load_state_dict(state["state_dict"])
    task.eval()
    val = dm.datasets["val"]
    images, labels = dm.normalize(val.source.images[val.indices]), torch.as_tensor(val.labels)
    with torch.no_grad():
        return (task(images).argmax(dim=-1) == labels).double()


@pytest.mark.slow
def test_val_acc_under_ddp_is_over_the_whole_val_split(runs_dir: Path) -> None:
    """Catches: metrics computed without the cross-rank reduction (e.g. the val metrics built with
    sync_on_compute=False, or a plain tensor mean logged without sync_dist): the run then logs rank 0's
    half, which differs here from the whole by more than the tolerance."""
    proc = run_cli(
        "litvision.train",
        "experiment=digits_cnn",
        "trainer=ddp_cpu",
        "trainer.max_epochs=1",
        "model.net.width=8",
        "model.optimizer.lr=0.01",
        "model.scheduler.name=constant",
        "model.scheduler.warmup_epochs=0",
        "data.batch_size=32",
        "test=false",
        "logger=csv",
        "callbacks.rich_progress_bar=null",
        "callbacks.model_summary=null",
        f"paths.runs_dir={runs_dir}",
        env=HELPERS_ENV,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = run_folders(runs_dir)
    with open(next(run.rglob("metrics.csv"))) as f:
        rows = [r for r in csv.DictReader(f) if r.get("val/acc")]
    # Epoch 0's validation (Lightning logs the final validation again under the next epoch's number).
    logged = [float(r["val/acc"]) for r in rows if r["epoch"] == "0"]
    assert len(logged) == 1, rows

    correct = _correct_on_val(run)
    n = len(correct)
    # Lightning's DistributedSampler for evaluation: no shuffle, padded to a multiple of the world
    # size with the first samples, rank r takes every 2nd index from r.
    order = list(range(n)) + list(range(math.ceil(n / 2) * 2 - n))
    whole = float(correct[order].mean())
    halves = [float(correct[order[r::2]].mean()) for r in (0, 1)]
    # The data can tell a reduced metric from rank 0's: the halves' accuracies differ.
    assert abs(halves[0] - whole) > 2 / n, (halves, whole)
    assert logged[0] == pytest.approx(whole, abs=1e-6), (logged, whole, halves)
