"""The sample-grid callback: what the model is fed, un-normalised and titled with class names."""

from __future__ import annotations

from pathlib import Path

import torch
from conftest import compose_cfg

from litvision.callbacks.sample_grid import SampleGrid, sample_grid_figure, unnormalize
from litvision.data.fixtures import classification as fx


def test_unnormalize_inverts_the_datamodule_statistics() -> None:
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    raw = torch.rand(2, 3, 5, 5)
    normed = (raw - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(unnormalize(normed, mean, std), raw, atol=1e-6)
    # Without statistics each image is stretched to [0, 1].
    out = unnormalize(torch.tensor([[[[2.0, 4.0]]]]), None, None)
    assert out.flatten().tolist() == [0.0, 1.0]


def test_figure_titles_are_class_names() -> None:
    fig = sample_grid_figure(torch.rand(3, 1, 8, 8), ["daisy", "roses", "tulips"], ncols=2)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["daisy", "roses", "tulips"] and len(fig.axes) == 4


def test_logged_at_the_start_of_training(tmp_path: Path, runs_dir: Path) -> None:
    from litvision.train import train

    overrides = fx.make_flowers(tmp_path)
    cfg = compose_cfg(
        [
            "data=flowers",
            *overrides,
            "data.image_size=32",
            "data.resize_size=36",
            "model.net.in_channels=3",
            "model.net.width=8",
            "trainer=cpu",
            "trainer.max_epochs=1",
            "+trainer.limit_train_batches=2",
            "+trainer.limit_val_batches=1",
            "+trainer.limit_test_batches=1",
            "logger=tensorboard",
        ],
        runs_dir,
    )
    summary = train(cfg)
    run_dir = Path(summary["run_dir"])
    assert (run_dir / "media" / "train_samples.png").stat().st_size > 1000
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next(run_dir.rglob("events.out.tfevents*")).parent)).Reload()
    assert "train/samples" in events.Tags()["images"]


def test_without_datamodule_or_class_names(tmp_path: Path) -> None:
    import lightning as L

    trainer = L.Trainer(logger=False, enable_checkpointing=False, default_root_dir=tmp_path)
    cb = SampleGrid(num_images=4)
    cb.on_train_batch_start(trainer, L.LightningModule(), (torch.randn(6, 1, 8, 8), torch.arange(6)), 0)
    assert (tmp_path / "media" / "train_samples.png").is_file()


def test_harmless_for_batches_it_cannot_show() -> None:
    import lightning as L

    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    detection_batch = ([torch.rand(3, 10, 12)], [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0)}])
    for batch in (detection_batch, torch.rand(2, 3, 4, 4), {"image": torch.rand(2, 3, 4, 4)}):
        cb = SampleGrid()
        cb.on_train_batch_start(trainer, L.LightningModule(), batch, 0)
        assert cb.logged
