"""`data=image_folder data.root=<folder>` on the default experiment trains, as the README says.

The default experiment's network (configs/model/small_cnn.yaml) takes its input channels from the
data (`${oc.select:data.in_channels,1}`): digits are grey (1), an image folder is RGB (3), so an
RGB folder trains an RGB model and `data.in_channels=1` a grey one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_cfg, one_line_refusal, run_cli, run_folders

# One colour per class: a model that saw only grey levels could not tell them apart.
COLOURS = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}


def write_rgb_folder(root: Path, per_class: int = 6, size: int = 20) -> Path:
    """root/<class>/<i>.png, RGB PNGs of each class's colour with noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.asarray(rgb, dtype=np.float64) + rng.normal(0, 20, (size, size, 3))
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB").save(root / name / f"{i}.png")
    return root


def test_rgb_image_folder_trains_an_rgb_model_on_the_default_experiment(tmp_path: Path) -> None:
    """Catches: the default network keeping in_channels=1 whatever the data (the run fails with a
    channel mismatch at the first batch), or the folder's images turned grey to fit it."""
    import torch

    from litvision.train import train

    root = write_rgb_folder(tmp_path / "photos")
    runs = tmp_path / "runs"
    # The README's line on the default experiment (no EXP); one epoch of small images.
    small = ["trainer.max_epochs=1", "data.num_workers=0", "data.image_size=32", "data.resize_size=36"]
    train(compose_cfg(["data=image_folder", f"data.root={root}", *small], runs))
    (run,) = run_folders(runs)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test"], summary  # trained, then tested
    ckpt = torch.load(summary["best_checkpoint"], map_location="cpu", weights_only=False)
    assert ckpt["hyper_parameters"]["net"]["in_channels"] == 3
    first_conv = next(v for k, v in ckpt["state_dict"].items() if v.ndim == 4)
    assert first_conv.shape[1] == 3  # the network's first convolution reads three channels


def test_grey_data_still_builds_a_grey_model(tmp_path: Path) -> None:
    """Catches: the interpolation giving every dataset 3 channels (digits would then fail)."""
    assert compose_cfg(["experiment=digits_cnn"], tmp_path).model.net.in_channels == 1
    cfg = compose_cfg(["data=image_folder", f"data.root={tmp_path}", "data.in_channels=1"], tmp_path)
    assert cfg.model.net.in_channels == 1


# -- your own images on the first try (issue 19, point 4) ---------------------------------------
def write_digit_folder(root: Path, per_class: int = 100, side: int = 28) -> Path:
    """root/<digit>/<i>.png: real handwritten digits (scikit-learn's, what the default experiment
    trains on) as 28 px grey PNGs, 10 classes x `per_class`, the way a user's scans would look."""
    from PIL import Image
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    for digit in range(10):
        (root / str(digit)).mkdir(parents=True)
        for i, pixels in enumerate(x[y == digit][:per_class]):
            grey = Image.fromarray((pixels.reshape(8, 8) * 255 / 16).astype(np.uint8), "L")
            grey.resize((side, side), Image.BILINEAR).save(root / str(digit) / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_digit_folder(tmp_path_factory.mktemp("digits") / "scans")


@pytest.mark.slow
def test_a_folder_of_28px_digits_learns_on_the_default_experiment(
    digit_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Catches: the ImageNet recipe (RandomResizedCrop 224, resize 256) fed to the default 8x8-digits
    CNN (chance after minutes: the size rule gone from base/images.yaml), and a size chosen that
    ignores the folder (224, or the model's 8 px: the digits blur into one another)."""
    from litvision.train import train

    runs = tmp_path / "runs"
    # The README's line for your own images, a held-out test split, and no loader workers (cheaper here).
    args = ["data=image_folder", f"data.root={digit_folder}", "data.test_fraction=0.2", "data.num_workers=0"]
    summary = train(compose_cfg([*args, "trainer.max_epochs=12"], runs))
    out = capsys.readouterr().out
    chosen = [line for line in out.splitlines() if line.startswith("preprocessing:")]
    assert chosen == [
        f"preprocessing: 28x28 px from the images in {digit_folder} (median shorter side 28 px of "
        "64 looked at); set data.image_size to choose another."
    ], out[-2000:]
    assert len(run_folders(runs)) == 1
    assert summary["test"]["test/acc"] >= 0.9, summary["test"]


@pytest.mark.parametrize(
    "case",
    ["224 px crops for the 8x8 net", "1-channel weights on RGB data", "10-class head on a 5-class folder"],
)
def test_a_model_data_mismatch_is_one_line_before_any_folder(
    digit_folder: Path, tmp_path: Path, case: str
) -> None:
    """Catches: each mismatch reaching the Trainer (a run folder made, then chance accuracy or a
    shape error deep in the first batch), and the check comparing the wrong pair (model channels
    against themselves: never refused) or refusing the default experiment's own data."""
    runs = tmp_path / "runs"
    folder = ["data=image_folder", f"data.root={digit_folder}"]
    if case.startswith("224"):
        args, says = (
            [*folder, "data.image_size=224"],
            "does not fit model small_cnn, which learns from 8-64 px",
        )
    elif case.startswith("1-channel"):
        # A checkpoint of the grey digits model, as a user would start from it.
        import torch

        from litvision.models.classification.cnn import SmallCNN

        weights = tmp_path / "grey.pth"
        torch.save(SmallCNN(in_channels=1, num_classes=10).state_dict(), weights)
        args, says = [*folder, f"model.net.weights={weights}"], "read 1-channel images but the data gives 3"
    else:
        five = tmp_path / "five"
        five.mkdir()
        for digit in range(5):
            (five / str(digit)).symlink_to(digit_folder / str(digit))
        args = ["data=image_folder", f"data.root={five}", "model.num_classes=10"]
        says = "model.num_classes=10 but the data"
    # Short limits: were the check gone, the run would end in seconds (and fail the test), not train.
    quick = ["trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1"]
    line = one_line_refusal(run_cli("litvision", "fit", *args, *quick, f"paths.runs_dir={runs}"))
    assert says in line, line
    assert not runs.exists() or not any(runs.rglob("*"))


def test_the_default_experiment_on_a_folder_passes_the_checks(digit_folder: Path, tmp_path: Path) -> None:
    """Catches: a check that refuses what fits (the folder's own size, RGB data, its own class count)."""
    from litvision.lifecycle.fits import check_model_fits_data

    cfg = compose_cfg(["data=image_folder", f"data.root={digit_folder}"], tmp_path)
    check_model_fits_data(cfg)
    assert (cfg.data.image_size, cfg.data.in_channels, cfg.model.num_classes) == (28, 3, 10)
