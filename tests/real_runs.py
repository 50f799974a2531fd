"""The real-run tier: small real runs, trained through the CLI once per suite run and shared by the
tests that read them (tests/test_real_runs.py, and the fixtures of test_extend_runs.py and
test_sweep_compare.py that used to train their own).

`make test` runs the files on 2 pytest-xdist workers, so a session fixture runs once per worker. The
runs are built under the session's shared temporary folder (the parent of each worker's basetemp),
in a folder keyed by the source tree, under a file lock: the first worker that needs a run trains it,
the other waits for it and reads the same folder. A failed build leaves no `done.json`, so the next
test that needs it tries again, and fails with the command's output.

The runs are read-only for their readers: a test that extends one forks it (a finished run is never
written again, litvision refuses that) into a runs folder of its own.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
from pathlib import Path

from conftest import HELPERS_ENV, ROOT, run_cli

# Fast digits settings: a handful of batches per stage, no progress bar or summary tables (the
# `SMALL` that test_extend_runs.py takes from here, whose step counts its tests quote).
DIGITS = [
    "experiment=digits_cnn",
    "++trainer.limit_train_batches=6",
    "++trainer.limit_val_batches=2",
    "++trainer.limit_test_batches=1",
    "trainer.num_sanity_val_steps=0",
    "trainer.log_every_n_steps=1",
    "data.check_duplicates=off",
    "model.net.width=8",
    "model.optimizer.lr=0.01",
    "logger=csv",
    "callbacks.rich_progress_bar=null",
    "callbacks.model_summary=null",
    "callbacks.sample_grid=null",
]

# name -> the command line after `python -m litvision` (paths.runs_dir and paths.data_dir are added).
COMMANDS: dict[str, list[str]] = {
    # The default experiment exactly as `make train` runs it: test_train.py checks its recipe
    # accuracy and run folder, test_tuning.py trains the tuner's suggestion against it.
    "recipe": ["fit", "experiment=digits_cnn"],
    # A short digits_cnn run with a test: export and the console read it.
    "digits": ["fit", *DIGITS, "trainer.max_epochs=3", "trainer.deterministic=true"],
    # Early stopping ends it after 3 epochs: no gain is ever larger than 1.0, patience 2
    # (test_extend_runs.py extends it).
    "stopped": [
        "fit",
        *DIGITS,
        "trainer.max_epochs=20",
        "callbacks.early_stopping.min_delta=1.0",
        "callbacks.early_stopping.patience=2",
    ],
    # A 2x2 grid of tiny runs (test_sweep_compare.py reads it).
    "sweep": [
        "sweep",
        "experiment=digits_cnn",
        "debug=limit",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=3",
        "trainer.log_every_n_steps=1",
        "callbacks.rich_progress_bar=null",
        "callbacks.model_summary=null",
        "model.optimizer.lr=1e-3,1e-2",
        "seed=1,2",
    ],
    # The detection experiment for 5 of its 10 epochs (the cosine planned over 5; 90 s on one core,
    # the whole recipe is `python -m bench detection`'s): test_detection_train.py checks that it
    # learns and that its summary's per-class AP table and its logged mAP are one evaluation.
    "yolov1_shapes": [
        "fit",
        "experiment=yolov1_shapes",
        "trainer.max_epochs=5",
        "logger=csv",
        "callbacks.rich_progress_bar=null",
    ],
}


def source_key() -> str:
    """A digest of what a run depends on: the code, configs, experiments and this file."""
    h = hashlib.sha256()
    files = [Path(__file__)]
    for folder in ("src", "configs", "experiments"):
        files += sorted(p for p in (ROOT / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for p in files:
        h.update(str(p.relative_to(ROOT)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


class RealRuns:
    """The tier's runs, built on first use. `folder(name)` is the run folder (the sweep folder for
    "sweep"); `console(name)` what the command printed."""

    def __init__(self, shared_tmp: Path) -> None:
        self.root = shared_tmp / f"litvision-real-runs-{source_key()}"

    def _built(self, name: str) -> dict:
        home = self.root / name
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            done = home / "done.json"
            if not done.is_file():
                shutil.rmtree(home, ignore_errors=True)
                runs = home / "runs"
                # Wide enough that rich never wraps a path the tests read from the console.
                env = {**HELPERS_ENV, "COLUMNS": "400"}
                # Data a run generates (the shapes) goes under the tier too, never into the checkout.
                where = [f"paths.runs_dir={runs}", f"paths.data_dir={home / 'data'}"]
                proc = run_cli("litvision", *COMMANDS[name], *where, env=env, timeout=900)
                (home / "console.txt").write_text(proc.stdout + proc.stderr)
                if proc.returncode != 0:
                    raise AssertionError(
                        f"real run {name!r} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
                    )
                found = sorted(p.parent for p in runs.rglob("config.yaml") if p.parent.name != ".hydra")
                folder = found[0] if name != "sweep" else next((runs / "digits_cnn" / "multirun").iterdir())
                done.write_text(json.dumps({"folder": str(folder), "command": COMMANDS[name]}))
            return json.loads(done.read_text())

    def folder(self, name: str) -> Path:
        return Path(self._built(name)["folder"])

    def console(self, name: str) -> str:
        self._built(name)
        return (self.root / name / "console.txt").read_text()

    def summary(self, name: str) -> dict:
        return json.loads((self.folder(name) / "summary.json").read_text())
