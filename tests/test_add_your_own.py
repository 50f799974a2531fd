"""The README's "Add your own model and dataset", done as a user would: its four files (a PNG reader with
`@register_dataset` + its data config, a torchvision model with `@register_model` + its model config),
taken verbatim from the README, are written where it says into a scratch copy of the repository, and its
`litvision fit` line trains them together through the real CLI for one epoch on a folder of PNGs.

Cost: one training process (ResNet-18 on 48 images of 16 px, a few batches) and two `litvision list`
calls, about 30 s on 2 idle cores.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

SECTION = "## Add your own model and dataset"
# A file of the section: "**<path>**:" or "**<path>** (...):" on its own line, then its code block.
FILE_BLOCK = re.compile(r"^\*\*([\w./]+)\*\*[^\n]*:\n```(?:python|yaml)\n(.*?)^```$", re.M | re.S)
# What every README training command gets in tests/test_readme_commands.py: few batches, no live bar.
TINY = [
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.log_every_n_steps=1",
    "callbacks.rich_progress_bar=null",
    "data.num_workers=0",
    "data.batch_size=16",
]


def readme_section(text: str) -> str:
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end != -1 else None]


def section_files(section: str) -> dict[str, str]:
    return {path: body for path, body in FILE_BLOCK.findall(section)}


def section_command(section: str) -> list[str]:
    (block,) = re.findall(r"^```bash\n(.*?)^```$", section, re.M | re.S)
    (line,) = [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]
    return shlex.split(line)


def write_pngs(folder: Path, per_class: int = 24) -> None:
    """Circles and squares, 16 px grey, at random places and sizes: a dataset a net can learn."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:16, :16]
    for label, name in enumerate(("circle", "square")):
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            r = int(rng.integers(3, 6))
            cy, cx = rng.integers(r, 16 - r, 2)
            if label == 0:
                mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            else:
                mask = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
            pixels = mask * 200 + rng.integers(0, 40, (16, 16))
            Image.fromarray(pixels.astype(np.uint8)).save(folder / name / f"{i:03d}.png")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch copy of the repository's code and configs with the README's four files added."""
    root = tmp_path_factory.mktemp("own")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "src", root / "src", ignore=ignore)
    shutil.copytree(ROOT / "configs", root / "configs", ignore=ignore)
    (root / "experiments").symlink_to(ROOT / "experiments")
    files = section_files(readme_section((ROOT / "README.md").read_text()))
    for path, body in files.items():
        target = root / path
        assert not target.exists(), f"the README's {path} would replace a file of the repository"
        target.write_text(body)
    write_pngs(root / "data" / "png_shapes")
    return root


def litvision(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "MLFLOW_", "SLURM_"))}
    # The scratch copy's code, not this checkout's: the new modules exist only there.
    env.update(PYTHONPATH=str(project / "src"), LITVISION_ROOT=str(project), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "litvision", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_readme_shows_two_files_for_each() -> None:
    """Catches: a README section that adds a third file (a fixture module in tests/fixtures/), or one that
    puts the reader outside the folders the catalog searches (plugins/png_shapes.py)."""
    files = section_files(readme_section((ROOT / "README.md").read_text()))
    datasets = [p for p in files if p.startswith(("src/litvision/data/", "configs/data/"))]
    models = [p for p in files if p.startswith(("src/litvision/models/", "configs/model/"))]
    assert len(datasets) == 2 and len(models) == 2 and len(files) == 4, sorted(files)


def test_a_new_dataset_and_model_train_together_through_the_cli(project: Path) -> None:
    """The README's files registered and its command line trained, in a scratch copy of the repository.
    Catches: the catalog importing a hand list of readers instead of every module of data/datasets/
    (`list datasets` then lacks png_shapes), and the README's code drifting from the API it uses
    (RawSplits' fields reordered, test before class_names: the README's fit line then fails)."""
    listed = litvision(project, "list", "datasets")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert re.search(r"png_shapes\s.*classification\s.*\b2\b\s.*\b1\b\s.*16 px", listed.stdout), listed.stdout
    models = litvision(project, "list", "models")
    assert models.returncode == 0 and "gray_resnet18" in models.stdout, models.stdout + models.stderr

    command = section_command(readme_section((ROOT / "README.md").read_text()))
    assert command[:2] == ["litvision", "fit"], command
    fit = litvision(project, *command[1:], *TINY)
    assert fit.returncode == 0, f"{fit.stdout[-3000:]}\n{fit.stderr[-3000:]}"
    (summary_path,) = (project / "runs").glob("*/*/summary.json")
    summary = json.loads(summary_path.read_text())
    config = (summary_path.parent / "config.yaml").read_text()
    assert "litvision.data.datasets.png_shapes.PngShapesDataModule" in config
    assert "litvision.models.classification.gray_resnet18.gray_resnet18" in config
    assert 0.0 <= summary["test"]["test/acc"] <= 1.0 and (summary_path.parent / "checkpoints").is_dir()
