"""`make sweep` (a 2x2 Hydra grid) -> four run folders under one sweep folder; `make compare` on it;
bad input for compare; the Optuna search of digits_cnn for two trials."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, compose_cfg

from litvision.tracking.run_records import find_run_dirs

TINY = (
    "debug=limit trainer.max_epochs=2 trainer.limit_train_batches=3 trainer.log_every_n_steps=1 "
    "callbacks.rich_progress_bar=null callbacks.model_summary=null"
)


def make(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`make <args>` as a user types it, with this interpreter instead of .venv."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    return subprocess.run(
        ["make", "--no-print-directory", f"PYTHON={sys.executable}", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def sweep(real_runs) -> Path:
    """The real-run tier's 2x2 grid (tests/real_runs.py: the `TINY` settings above, lr x seed),
    trained once for the suite. Tests copy what they change; only `compare/` is written into it."""
    return real_runs.folder("sweep")


def test_grid_sweep_makes_one_folder_per_run(sweep: Path) -> None:
    runs = find_run_dirs(sweep)
    assert [r.name for r in runs] == ["0", "1", "2", "3"]
    seen = set()
    for r in runs:
        cfg = yaml.safe_load((r / "config.yaml").read_text())
        seen.add((cfg["model"]["optimizer"]["lr"], cfg["seed"]))
        assert (r / "summary.json").is_file() and (r / "csv" / "metrics.csv").is_file()
    assert seen == {(1e-3, 1), (1e-3, 2), (1e-2, 1), (1e-2, 2)}


def test_make_compare_on_a_sweep(sweep: Path) -> None:
    proc = make("compare", f"RUNS={sweep}")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # Exactly the two swept keys differ (data.seed follows ${seed} and is not a second difference).
    from litvision.tracking.run_records import differing_keys, load_runs

    assert differing_keys(load_runs([sweep])) == ["model.optimizer.lr", "seed"]
    header = next(line for line in out.splitlines() if "model.optimizer.lr" in line)
    assert "seed" in header and "data.seed" not in out and "val/acc" in header and "test/acc" in header

    compare_dir = sweep / "compare"
    md = (compare_dir / "runs.md").read_text().splitlines()
    head = [c.strip() for c in md[2].strip("|").split("|")]
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split("|")] for line in md[4:])}
    assert sorted(rows) == ["0", "1", "2", "3"]
    for name, cells in rows.items():
        summary = json.loads((sweep / name / "summary.json").read_text())
        cfg = yaml.safe_load((sweep / name / "config.yaml").read_text())
        row = dict(zip(head, cells, strict=True))
        assert float(row["model.optimizer.lr"]) == cfg["model"]["optimizer"]["lr"]
        assert int(row["seed"]) == cfg["seed"]
        for metric, value in {**summary["best_val"], **summary["test"]}.items():
            assert math.isclose(float(row[metric]), value, abs_tol=5e-5), (name, metric)
            if metric in ("val/acc", "val/loss", "test/acc", "test/loss"):  # printed: main metric and loss
                assert f"{value:.4f}" in out, (name, metric)
        assert math.isclose(float(row["wall_time_s"]), summary["wall_time_s"], abs_tol=0.05)
        assert row["status"] == "ok"
    for png in ("loss.png", "val_acc.png"):
        data = (compare_dir / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, png


def test_compare_dataframe_and_learning_curves_match_the_runs(sweep: Path) -> None:
    import pandas as pd

    from litvision.tracking.run_records import compare_frame, load_runs, read_curves

    runs = load_runs([sweep])
    df = compare_frame(runs)
    assert list(df.index) == ["0", "1", "2", "3"]
    for r in runs:
        assert df.loc[r.label, "val/acc"] == r.summary["best_val"]["val/acc"]
        curves = read_curves(r)
        fit_val = curves["val/acc"].dropna()
        assert len(fit_val) == r.epochs == 2, "one val/acc per epoch; the re-validation after fit dropped"
        assert math.isclose(fit_val.max(), r.summary["best_score"], rel_tol=1e-6)
        assert curves["train/loss"].notna().sum() == r.summary["global_step"]
    assert isinstance(df, pd.DataFrame)


def test_compare_notes_a_crashed_run_and_shows_the_others(sweep: Path, tmp_path: Path) -> None:
    from litvision.train import train

    folder = tmp_path / "mixed"
    shutil.copytree(sweep / "0", folder / "0")
    shutil.copytree(sweep / "3", folder / "3")
    # A real crash in training, after the run folder exists (bad input would be refused before).
    cfg = compose_cfg(
        [
            "experiment=digits_cnn",
            "+callbacks.crash._target_=conftest.CrashAtEpochStart",
            "+callbacks.crash.epoch=0",
            f"hydra.run.dir={folder / 'crashed'}",
        ],
        tmp_path,
    )
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg)
    assert (folder / "crashed" / "config.yaml").is_file() and not (
        folder / "crashed" / "summary.json"
    ).exists()

    proc = make("compare", f"RUNS={folder}")
    assert proc.returncode == 0, proc.stderr
    assert f"note: {folder / 'crashed'}: no summary.json: crashed, killed or still running" in proc.stdout
    assert "1 of 3 run(s) have no results; the others are compared above." in proc.stdout
    md = (folder / "compare" / "runs.md").read_text()
    for name in ("0", "3"):
        value = json.loads((folder / name / "summary.json").read_text())["best_val"]["val/acc"]
        assert f"{value:.4f}" in proc.stdout and f"| {name} |" in md
    assert "| crashed |" in md and "no summary.json" in md
    # The crashed run's extra callback now differs too; its value is shown.
    assert "callbacks.crash._target_" in md


@pytest.mark.parametrize(
    ("content", "note"),
    [
        (
            b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary",
            "unreadable summary.json (not UTF-8 text: binary or corrupted)",
        ),
        (
            b'[{"best_val": {"val/acc": 0.5}}]',
            "summary.json has the wrong shape (a JSON list, not an object)",
        ),
        (b'{"experiment": "digits_cnn"}', "summary.json has the wrong shape (no best_val or test metrics)"),
        (
            b'{"best_val": [0.5], "test": {}}',
            "summary.json has the wrong shape (best_val is a list, not an object)",
        ),
        (b'{"best_val": {"val/acc": 0.5', "unreadable summary.json (not JSON: "),
    ],
    ids=["binary", "list", "missing-keys", "list-metrics", "truncated"],
)
def test_compare_lists_a_bad_summary_and_compares_the_rest(
    content: bytes, note: str, sweep: Path, tmp_path: Path
) -> None:
    """Catches a crash (UnicodeDecodeError, AttributeError on a list) on one bad summary.json, which
    stops the comparison of every other run."""
    folder = tmp_path / "mixed"
    for name in ("0", "1", "2"):
        shutil.copytree(sweep / name, folder / name, ignore=shutil.ignore_patterns("compare"))
    (folder / "1" / "summary.json").write_bytes(content)
    proc = make("compare", f"RUNS={folder}")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"note: {folder / '1'}: {note}" in proc.stdout
    assert "1 of 3 run(s) have no results; the others are compared above." in proc.stdout
    md = (folder / "compare" / "runs.md").read_text()
    for name in ("0", "2"):
        value = json.loads((folder / name / "summary.json").read_text())["best_val"]["val/acc"]
        assert f"{value:.4f}" in proc.stdout and f"| {name} |" in md
    assert "| 1 |" in md and note.split(" (")[0] in md


def test_compare_bad_input_is_a_clear_message(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = make("compare", f"RUNS={empty}")
    assert proc.returncode != 0
    assert f"error: No runs found under {empty}" in proc.stderr and "make train EXP=" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = make("compare", f"RUNS={tmp_path / 'nope'}")
    assert f"error: No such folder: {tmp_path / 'nope'}" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "litvision.compare",
            "--exp",
            "digits_cnn",
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and f"No such folder: {tmp_path / 'runs' / 'digits_cnn'}" in proc.stderr


def test_compare_does_not_import_torch(sweep: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from litvision.compare import main; "
        f"main([{str(sweep)!r}, '--out', {str(tmp_path)!r}]); "
        "assert 'torch' not in sys.modules, 'compare imported torch'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "runs.md").is_file()


def test_optuna_search_runs_trials_and_reports_the_best(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    proc = make(
        "sweep",
        "EXP=digits_cnn",
        f"ARGS=hparams_search=digits_cnn_optuna hydra.sweeper.n_trials=2 {TINY} trainer.max_epochs=1 "
        f"paths.runs_dir={runs_dir}",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [sweep_dir] = (runs_dir / "digits_cnn" / "multirun").iterdir()
    trials = find_run_dirs(sweep_dir)
    assert len(trials) == 2
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    scores = [json.loads((t / "summary.json").read_text())["best_val"]["val/acc"] for t in trials]
    # The sweeper optimised the value main() returned: the best val/acc of a trial's summary.json.
    assert math.isclose(results["best_value"], max(scores), rel_tol=1e-9)
    assert set(results["best_params"]) == {
        "model.optimizer.lr",
        "model.optimizer.weight_decay",
        "model.net.width",
        "model.net.dropout",
        "data.batch_size",
    }
