"""`data.skip_corrupt=true` also covers an image that passes the up-front header check and fails
to decode during training; warnings that change what was trained on reach the terminal."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import compose_cfg
from test_predict import write_corrupt_jpeg

from litvision.data.fixtures import classification as fx
from litvision.data.pipeline.decode import UnreadableImage, check_image


def _datamodule(overrides: list[str], runs_dir: Path):
    from litvision.build import build_datamodule

    dm = build_datamodule(compose_cfg(overrides, runs_dir))
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_decode_failure_is_skipped_by_the_dataset(tmp_path: Path, runs_dir: Path, capfd) -> None:
    """Catches: a decode failure in __getitem__ crashing the epoch although skip_corrupt=true (remove
    the substitution in ImageSubset), or its warning reaching only the log file."""
    root = tmp_path / "imgs"
    fx.write_class_folder(root, ["a", "b"], per_class=5, size=(8, 8))
    bad = write_corrupt_jpeg(root / "b" / "bogus_huffman.jpg")
    assert check_image(bad) is None  # the header check lets it through
    base = ["data=image_folder", f"data.root={root}", "data.image_size=8", "data.val_fraction=0.2"]

    dm = _datamodule([*base, "data.skip_corrupt=true"], runs_dir)
    assert dm.skipped == 0
    train = next(ds for ds in (dm.datasets["train"], dm.datasets["val"]) if bad in _paths(ds))
    at = _paths(train).index(bad)
    items = [train[i] for i in range(len(train))]  # every item: no exception
    substitute = int(train.indices[(at + 1) % len(train)])
    assert items[at][1] == int(train.source.labels[substitute])
    assert train.source.unreadable.keys() == {int(train.indices[at])}
    err = capfd.readouterr().err
    assert f"warning: Skipping unreadable image {bad}" in err and "data.skip_corrupt=true" in err
    assert err.count(str(bad)) == 1  # once per process, not on every access
    train[at]
    assert str(bad) not in capfd.readouterr().err

    dm = _datamodule(base, runs_dir)
    train = next(ds for ds in (dm.datasets["train"], dm.datasets["val"]) if bad in _paths(ds))
    with pytest.raises(UnreadableImage, match=rf"Cannot decode image {bad} .*skip_corrupt=true"):
        train[_paths(train).index(bad)]


def _paths(ds) -> list[Path]:
    return [ds.source.paths[int(j)] for j in ds.indices]


def test_training_skips_it_and_says_so_on_the_terminal(tmp_path: Path, runs_dir: Path, capfd) -> None:
    """Catches: training on flowers stopping at a file that fails to decode in epoch 0 (in a loader
    worker) with skip_corrupt=true, and the skip or the missing test split not shown on stderr."""
    from litvision.train import train

    overrides = fx.make_flowers(tmp_path)
    root = Path(next(o for o in overrides if o.startswith("data.root=")).split("=", 1)[1])
    bad = write_corrupt_jpeg(root / "daisy" / "bogus_huffman.jpg")
    cfg = compose_cfg(
        [
            "data=flowers",
            *overrides,
            "data.skip_corrupt=true",
            "data.num_workers=1",
            "data.image_size=16",
            "data.resize_size=16",
            "data.batch_size=8",
            "model.net.in_channels=3",
            "model.net.width=8",
            "trainer=cpu",
            "trainer.max_epochs=1",
            "callbacks=none",
            "logger=csv",
        ],
        runs_dir,
    )
    summary = train(cfg)
    assert summary["epochs_completed"] == 1 and summary["test"]
    err = capfd.readouterr().err
    assert f"warning: Skipping unreadable image {bad}" in err
    assert "has no test split: testing on the validation split" in err
