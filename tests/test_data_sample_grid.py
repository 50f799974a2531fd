"""The sample-grid callback: what the model is fed, un-normalised and titled with class names."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
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


# --- What the grid shows, at the unit level (the callback's figure captured where it is logged) ---------


def _shown(ax) -> torch.Tensor:
    """The pixels an axes draws, as a tensor (H, W) or (H, W, 3)."""
    return torch.as_tensor(ax.images[0].get_array().data)


def test_uint8_images_are_scaled_by_255() -> None:
    """Catches: uint8 batches (not normalised yet) shown at the wrong brightness (* 255, / 256)."""
    out = unnormalize(torch.tensor([[[[0, 51, 255]]]], dtype=torch.uint8), None, None)
    assert out.flatten().tolist() == pytest.approx([0.0, 0.2, 1.0], abs=1e-7)


def test_unnormalize_clamps_and_falls_back_without_full_statistics() -> None:
    """Values the statistics map outside [0, 1] (augmentation overshoot) are clipped to it; with only one
    of mean/std, or statistics of another channel count, each image is min-max scaled on its own.
    Catches: the clamp losing a bound; `mean or std` taken for both; min-max over the whole batch
    instead of per image; a small value range not stretched to [0, 1]."""
    mean, std = (0.5,), (0.25,)
    normed = torch.tensor([[[[-3.0, 0.0, 3.0]]]])  # -> -0.25, 0.5, 1.25 before clipping
    assert unnormalize(normed, mean, std).flatten().tolist() == [0.0, 0.5, 1.0]
    two = torch.stack([torch.tensor([[[0.0, 0.25]]]), torch.tensor([[[10.0, 30.0]]])])  # (2, 1, 1, 2)
    for m, s in ((mean, None), (None, std), ((0.5, 0.5, 0.5), (0.2, 0.2, 0.2))):
        assert unnormalize(two, m, s).flatten().tolist() == [0.0, 1.0, 0.0, 1.0], (m, s)
    flat = unnormalize(torch.full((1, 1, 2, 2), 7.0), None, None)
    assert flat.flatten().tolist() == [0.0] * 4  # no 0/0


def test_grid_layout_follows_the_images_and_columns() -> None:
    """8 columns by default, as many rows as needed, one cell per image for a single image, each cell the
    same size (a square image with its title above) whatever the grid, axes hidden.
    Catches: another default column count; two columns for one image; a 1x1 grid failing; the figure
    not growing with the grid (fixed or divided size) or cells of another shape."""
    fig = sample_grid_figure(torch.rand(16, 1, 8, 8), [str(i) for i in range(16)])
    assert len(fig.axes) == 16 and {ax.get_subplotspec().get_geometry()[:2] for ax in fig.axes} == {(2, 8)}
    one = sample_grid_figure(torch.rand(1, 3, 8, 8), ["only"])
    assert len(one.axes) == 1 and one.axes[0].get_title() == "only"
    cell = None
    for fig, rows, cols in (
        (one, 1, 1),
        (sample_grid_figure(torch.rand(6, 1, 8, 8), list("abcdef"), 4), 2, 4),
    ):
        w, h = fig.get_size_inches()
        assert cell is None or (w / cols, h / rows) == pytest.approx(cell)
        cell = (w / cols, h / rows)
        assert not any(ax.axison for ax in fig.axes)
    assert 0.8 < cell[0] / cell[1] < 1.0 and cell[0] >= 1.5


def test_images_are_drawn_grey_or_colour_on_a_fixed_scale() -> None:
    """A one-channel image is drawn in grey on the fixed [0, 1] scale (a dark image stays dark, not
    stretched by matplotlib); a colour image as its first three channels, a fourth (alpha, an extra band)
    left out. Catches: grey images through the RGB path (or the test on the wrong dimension), another
    colour map, autoscaled or shifted limits, a fourth channel drawn."""
    dark = torch.full((1, 1, 6, 5), 0.2)
    dark[0, 0, 0, 0] = 0.3
    colour = torch.rand(1, 4, 6, 5)
    fig = sample_grid_figure(dark, ["a"])
    ax = fig.axes[0]
    assert ax.images[0].get_cmap().name == "gray" and ax.images[0].get_clim() == (0, 1)
    assert torch.equal(_shown(ax), dark[0, 0])
    shown = _shown(sample_grid_figure(colour, ["c"]).axes[0])
    assert shown.shape == (6, 5, 3) and torch.equal(shown, colour[0, :3].permute(1, 2, 0))


def test_titles_are_smaller_than_matplotlibs_default() -> None:
    """Class names are set small (8 pt) so that long ones fit a 1.6-inch cell. Catches: the size dropped
    (matplotlib's 12 pt titles overlap their neighbours)."""
    fig = sample_grid_figure(torch.rand(2, 1, 8, 8), ["a_rather_long_class_name", "b"])
    assert fig.axes[0].title.get_fontsize() <= 8


class _DM:
    class_names = ["cat", "dog", "eel"]
    mean, std = (0.5,), (0.25,)


def _logged(monkeypatch, cb: SampleGrid, batches, trainer=None, module=None) -> list:
    """The figures the callback hands to log_figure for these batches."""
    import lightning as L

    import litvision.utils.media as media

    figures: list = []
    monkeypatch.setattr(media, "log_figure", lambda trainer, tag, fig: figures.append((tag, fig)))
    trainer = trainer or SimpleNamespace(fast_dev_run=False, is_global_zero=True, datamodule=_DM())
    for i, batch in enumerate(batches):
        hook = cb.on_train_batch_start
        if callable(hook):  # as Lightning dispatches: a hook set to None is skipped (utils/callback_hooks.py)
            hook(trainer, module or L.LightningModule(), batch, i)
    return figures


def test_titles_and_pixels_come_from_the_datamodule(monkeypatch) -> None:
    """The first batch only, its first num_images images, un-normalised with the DataModule's mean/std
    and titled with its class names (a label outside them shown as the number).
    Catches: the DataModule, its class_names, mean or std not read; the number shown for class 0 or a
    name looked up past the end; logging every batch; num_images or ncols not passed on."""
    x = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0]).view(5, 1, 1, 1).expand(5, 1, 4, 4)
    batch = (x, torch.tensor([0, 2, 3, -1, 1]))
    [(tag, fig)] = _logged(monkeypatch, SampleGrid(num_images=4, ncols=2), [batch, batch])
    assert tag == "train/samples"
    assert [ax.get_title() for ax in fig.axes if ax.images] == ["cat", "eel", "3", "-1"]
    assert {ax.get_subplotspec().get_geometry()[:2] for ax in fig.axes} == {(2, 2)}
    assert [float(_shown(ax)[0, 0]) for ax in fig.axes] == [0.0, 0.25, 0.5, 0.75]


def test_class_names_from_the_task_when_the_datamodule_has_none(monkeypatch) -> None:
    """Catches: the task's class_names ignored (numbers shown) when the DataModule has none."""
    import lightning as L

    module = L.LightningModule()
    module.class_names = ["ant", "bee"]
    trainer = SimpleNamespace(fast_dev_run=False, is_global_zero=True, datamodule=None)
    [(_, fig)] = _logged(
        monkeypatch, SampleGrid(), [(torch.rand(2, 3, 4, 4), torch.tensor([1, 0]))], trainer, module
    )
    assert [ax.get_title() for ax in fig.axes if ax.images] == ["bee", "ant"]


def test_default_is_16_images_and_none_with_num_images_0(monkeypatch) -> None:
    """Catches: another default count; num_images=0 (the documented off switch) still logging, or
    num_images=1 logging nothing."""
    batch = (torch.rand(20, 1, 4, 4), torch.zeros(20, dtype=torch.long))
    [(_, fig)] = _logged(monkeypatch, SampleGrid(), [batch])
    assert sum(bool(ax.images) for ax in fig.axes) == 16 and len(fig.axes) == 16
    assert _logged(monkeypatch, SampleGrid(num_images=0), [batch]) == []
    [(_, fig)] = _logged(monkeypatch, SampleGrid(num_images=1), [batch])
    assert len(fig.axes) == 1


def test_nothing_logged_under_fast_dev_run_or_off_rank_zero_or_for_unshowable_batches(monkeypatch) -> None:
    """Catches: logging under fast_dev_run (its dummy loggers keep nothing) or on every rank; a batch of
    one element, or of images that are not (N, C, H, W), taken for (images, labels) (a crash)."""
    good = (torch.rand(2, 1, 4, 4), torch.tensor([0, 1]))
    for dev, zero in ((True, True), (False, False), (True, False)):
        trainer = SimpleNamespace(fast_dev_run=dev, is_global_zero=zero, datamodule=_DM())
        assert _logged(monkeypatch, SampleGrid(), [good], trainer) == [], (dev, zero)
    for bad in ((torch.rand(2, 1, 4, 4),), (torch.rand(2, 4, 4), torch.tensor([0, 1]))):
        cb = SampleGrid()
        assert _logged(monkeypatch, cb, [bad]) == [] and cb.logged
