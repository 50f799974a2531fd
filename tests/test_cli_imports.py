"""The CLI's start-up path imports nothing heavy: `litvision --help`, `list`, every command's
`--help` and the refusals of bad input answer without importing torch, Lightning, W&B or timm
(DESIGN.md, Conventions: heavy imports inside the functions that need them)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT

HEAVY = ("torch", "torchvision", "lightning", "wandb", "timm", "mlflow", "onnx", "onnxruntime")


def _imports(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `python -X importtime -m litvision <args>` as a user would; the top-level packages it imported."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "LITVISION_ROOT": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "litvision", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    # -X importtime writes one line per module imported: "import time: self | cumulative | <indent>name".
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", proc.stderr, flags=re.M)
    assert names, "-X importtime reported nothing: the check would pass vacuously"
    return proc, {n.split(".")[0] for n in names}


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["list"],
        ["fit", "--help"],
        ["test", "--help"],
        ["predict", "--help"],
        ["tune", "--help"],
        ["sweep", "--help"],
        ["export", "--help"],
        ["submit", "--help"],
        ["compare", "--help"],
    ],
    ids=" ".join,
)
def test_help_and_list_import_no_heavy_package(args: list[str]) -> None:
    """Catches: `import torch` (or lightning, via litvision.build) at the top of litvision/cli.py or of
    litvision/config.py (what `list` reads)."""
    proc, imported = _imports(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage" in proc.stdout or "digits_cnn" in proc.stdout, proc.stdout
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bogus"], "unknown command 'bogus'"),
        (["fit", "--bogus"], "Unknown option --bogus"),
        (["fit", "experiment=no_such_experiment"], "no_such_experiment"),
        (["fit", "data.batch_size=0"], "data.batch_size"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_refusals_are_one_line_without_heavy_imports(args: list[str], message: str, tmp_path) -> None:
    """Catches: the lifecycle's refusal path importing torch/lightning before it validates (e.g. a
    top-level `import lightning` in litvision/lifecycle/runner.py or checks.py)."""
    proc, imported = _imports(*args, *([f"paths.runs_dir={tmp_path}"] if args[0] == "fit" else []))
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if not ln.startswith("import time:")]
    assert message in "\n".join(errors), errors
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
    assert not list(tmp_path.iterdir())  # refused before any run folder exists


def test_the_check_sees_a_heavy_import() -> None:
    """Catches: a parse of -X importtime that misses nested or top-level imports (the checks above
    would then pass vacuously): the same parse must find torch where torch is imported."""
    code = "import sys, torch; print('torch' in sys.modules)"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, timeout=120
    )
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", proc.stderr, flags=re.M)
    assert "torch" in {n.split(".")[0] for n in names}
