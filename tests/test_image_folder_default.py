"""`data=image_folder data.root=<folder>` on the default experiment trains, as the README says.

The default experiment's network (configs/model/small_cnn.yaml) takes its input channels from the
data (`${oc.select:data.in_channels,1}`): digits are grey (1), an image folder is RGB (3), so an
RGB folder trains an RGB model and `data.in_channels=1` a grey one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conftest import compose_cfg, run_folders

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
