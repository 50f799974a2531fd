"""A training step never makes the GPU wait: no value is read back to Python between steps.

Lightning reads back every value logged with `prog_bar=True` after every batch, and a progress bar
reads what it shows; each read stalls the GPU's queue, which at CIFAR step times costs a large part
of the throughput (bench/results/throughput.json). The aten ops that stall a GPU are also called on
the CPU, so a real Trainer run here records them (tests/step_sync_helpers.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import compose_cfg

BASE = [
    "experiment=digits_cnn",
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=10",
    "++trainer.limit_val_batches=1",
    "test=false",
    "logger=csv",
    "callbacks.model_summary=null",
    "+callbacks.spy._target_=step_sync_helpers.SyncSpy",
]


pytestmark = pytest.mark.usefixtures("helpers_importable")  # step_sync_helpers.* by name


def _fit(runs_dir: Path, *overrides: str) -> dict:
    from litvision.train import train

    out = runs_dir / "spy.json"
    train(compose_cfg([*BASE, f"+callbacks.spy.path={out}", *overrides], runs_dir))
    return json.loads(out.read_text())


@pytest.mark.parametrize("device_cache", ["false", "true"])
def test_training_steps_read_nothing_back_from_the_device(runs_dir: Path, device_cache: str) -> None:
    """Catches: `train/loss` logged with prog_bar=True (Lightning's .item() after each batch), the
    progress bar reading its metrics at every step, a sync op in the device cache's batches, and a read
    inside training_step (`bool(torch.isfinite(loss))`: Lightning runs the step inside optimizer.step,
    so the spy excuses a torch/optim/ read only when torch/optim/ made it)."""
    rec = _fit(
        runs_dir,
        f"data.device_cache={device_cache}",
        "trainer.log_every_n_steps=1000",
        # The bar's first read happens at step 0, before the window; none after it for 1000 s.
        "callbacks.rich_progress_bar.metrics_every_s=1000",
    )
    assert rec["steps"] == 10 and rec["bar_type"] == "ProgressBar"
    assert rec["ops"] == {}, rec["where"]


def test_batches_normalised_after_the_transfer_copy_nothing_from_the_host(
    runs_dir: Path, tmp_path: Path
) -> None:
    """uint8 CIFAR batches from loader workers, normalised on the Trainer's device (what a GPU run
    does). Catches: torchvision's Normalize with list mean/std there (it makes two tensors from Python
    numbers per batch: two synchronous host-to-device copies per step on a GPU)."""
    from litvision.data.fixtures.classification import make_cifar10

    make_cifar10(tmp_path)
    rec = _fit(
        runs_dir,
        "data=cifar10",
        f"data.root={tmp_path / 'cifar10'}",
        "data.download=false",
        "data.batch_size=4",
        "data.num_workers=1",  # the per-image crops run in a worker, as on a GPU machine
        "data.normalize_on=device",
        "trainer.log_every_n_steps=1000",
        "callbacks.rich_progress_bar.metrics_every_s=1000",
    )
    assert rec["steps"] == 10
    assert rec["ops"] == {}, rec["where"]


def test_batch_normalize_equals_torchvision_and_keeps_its_statistics() -> None:
    """Catches: different float operations from ToDtype(scale=True) + Normalize (the device-normalised
    batches would differ from the worker-normalised ones), and mean/std rebuilt at each call."""
    import torch

    from litvision.data.transforms.classification import BatchNormalize, TransformConfig, normalize_transform

    mean, std = [0.4914, 0.4822, 0.4465], [0.247, 0.2435, 0.2616]
    x = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    norm = BatchNormalize(mean, std)
    reference = normalize_transform(TransformConfig(mean=mean, std=std))(x)
    assert torch.equal(norm(x), reference) and torch.equal(norm(x[0]), reference[0])
    first = norm._on[x.device]
    norm(x)
    assert all(a is b for a, b in zip(norm._on[x.device], first, strict=True))


def test_the_spy_sees_a_read_back(runs_dir: Path) -> None:
    """The control: logging every step reads each value back, and the record shows it (so the test
    above would see a read if there were one). Catches: a spy that records nothing."""
    rec = _fit(runs_dir, "trainer.log_every_n_steps=1", "callbacks.rich_progress_bar.metrics_every_s=1000")
    assert rec["ops"].get("_local_scalar_dense", 0) >= 5, rec  # steps 2-6 (7 is logged after the window)
    assert "convert_tensors_to_scalars" in rec["where"]["_local_scalar_dense"]  # Lightning logging it


def test_the_progress_bar_shows_the_step_loss(runs_dir: Path) -> None:
    """Catches: the step loss missing from the bar once it is no longer logged with prog_bar=True,
    and the epoch-end read skipped (the bar would show an older step's loss)."""
    rec = _fit(runs_dir, "callbacks.rich_progress_bar.metrics_every_s=1000")
    assert rec["bar_shown"] == {"train/loss": pytest.approx(rec["train_loss"])}
