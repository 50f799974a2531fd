"""The modules of `litvision.data` before its datasets/ pipeline/ transforms/ layout stay importable.

Checkpoints written before the move name their DataModule by its old dotted path
(`checkpoint["litvision"]["datamodule"]`), and predict imports it by that path.
"""

from __future__ import annotations

import csv
import importlib
from pathlib import Path

import pytest
import torch
from conftest import compose_cfg, run_cli
from test_predict import predict_cfg, write_digit_pngs

from litvision.data.moved import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_module_is_the_new_module(old: str) -> None:
    """Catches: an old name left out of MOVED or pointing at a wrong module (a DataModule looked up
    by its old path would be another class, or missing), and a stub copy instead of an alias (two
    classes: isinstance and class identity would differ)."""
    new = importlib.import_module(MOVED[old])
    assert importlib.import_module(old) is new
    assert old.rsplit(".", 1)[-1] in {"base", "datasets", "folders", "presets", "det_transforms"} or (
        new.__name__.endswith("." + old.rsplit(".", 1)[-1])
    ), f"{old} -> {new.__name__}: the alias must keep the module's name unless the name misled"


def test_every_file_that_moved_has_its_old_name() -> None:
    """Catches: a module moved into a folder without an entry in MOVED (old imports would break)."""
    import litvision.data as data

    root = Path(data.__file__).parent
    moved_to = set(MOVED.values())
    # Written after the move: they never had a name directly in data/.
    new = {"pipeline.records", "pipeline.choose", "pipeline.filecache", "transforms.mosaic"}
    for sub in ("datasets", "pipeline", "transforms"):
        for path in (root / sub).glob("*.py"):
            name = f"litvision.data.{sub}.{path.stem}"
            if path.stem in ("__init__", "registry") or f"{sub}.{path.stem}" in new:
                continue
            if name != "litvision.data.datasets.sources":
                assert name in moved_to, f"{name} has no old name in litvision/data/moved.py"


def test_old_checkpoint_predicts_like_a_new_one(tmp_path: Path) -> None:
    """A checkpoint as today's main writes it (its record names litvision.data.digits.DigitsDataModule)
    gives the same predictions as one naming the new path; `python -m` on an old module path runs.
    Catches: the alias finder not installed by `import litvision.data` (predict: no module
    litvision.data.digits), and the finder without get_code (`python -m litvision.data.shapes` fails)."""
    from litvision.train import train

    summary = train(
        compose_cfg(
            ["experiment=digits_cnn", "debug=limit", "trainer.max_epochs=1", "test=false"], tmp_path / "r"
        )
    )
    new = Path(summary["best_checkpoint"])
    ckpt = torch.load(new, weights_only=True)
    assert ckpt["litvision"]["datamodule"] == "litvision.data.datasets.digits.DigitsDataModule"
    ckpt["litvision"]["datamodule"] = "litvision.data.digits.DigitsDataModule"
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)

    from litvision.commands.predict import run_predict

    images = tmp_path / "images"
    write_digit_pngs(images)
    rows = []
    for path in (new, old):
        out = tmp_path / path.stem
        run_predict(predict_cfg(path, images, tmp_path / "runs"), out)
        rows.append(list(csv.reader((out / "predictions.csv").open())))
    assert rows[0] == rows[1] and len(rows[0]) == 13

    proc = run_cli("litvision.data.shapes", "--help")
    assert proc.returncode == 0 and "usage: python -m litvision.data.datasets.shapes" in proc.stdout, (
        proc.stderr
    )
