"""A session as a user has it (issue 20, points 4 and 6): a W&B offline run, an MLflow run and a
sweep of one more lr with CSV and TensorBoard, all real runs through the CLI in one folder.

- Each console is litvision's: no W&B, MLflow, Hydra or Lightning chatter on stdout or stderr, the
  bar counts epochs from 1 and has no `v_num`, and the run (or sweep) folder is the last line.
- The sweep says "job k of n" and ends with the comparison of its runs.
- `make compare` over the folder groups by lr only (the runs also differ in logger, paths and
  seed), writes no library warning, and draws every run's curve whatever its logger.
- Every run folder has history.png.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from conftest import run_cli

TINY = [
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.log_every_n_steps=1",
    "callbacks.sample_grid=null",
]
LR_A, LR_B = "0.003", "0.01"
# Lines litvision prints; anything else on the console is a library talking.
OURS = re.compile(
    r"^(│|╭|╰|┏|┃|┡|│|└|━|\s*$|Epoch \d+/\d+ |Validation |Testing |\s+\S+/\S+: |model: |note: |"
    r"W&B offline |digits_cnn: best checkpoint|best checkpoint: |wall time: |run folder: |Sweep folder: |"
    r"job \d+ of \d+|Sweep finished: |sweep folder: |key columns: |wrote |\d+ of the \d+ config keys|"
    r"\d+ run\(s\) under |\d+ group\(s\) |Welch t-test |No Welch t-test |\* n < 3 |curves: )"
)
# The libraries' own words, should a line slip through OURS's looser patterns.
THIRD_PARTY = ("wandb:", "mlflow", "MLflow database", "[HYDRA]", "Experiment with name", "anonymous", "v_num")


def _env() -> dict[str, str]:
    # conftest sets WANDB_SILENT for the whole suite; a user's shell does not, so neither does this run.
    return {"WANDB_SILENT": "false", "COLUMNS": "120"}


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> dict:
    runs = tmp_path_factory.mktemp("session") / "runs"
    common = [*TINY, f"paths.runs_dir={runs}"]
    out = {"runs": runs}
    for name, extra in {
        "wandb": ["logger=wandb", "seed=1", f"model.optimizer.lr={LR_A}"],
        # The shared store (one documented override): compare reads the curves from it.
        "mlflow": [
            "logger=mlflow",
            "logger.mlflow.tracking_uri=shared",
            "seed=2",
            f"model.optimizer.lr={LR_A}",
            f"paths.data_dir={runs.parent}/data",
        ],
    }.items():
        proc = run_cli("litvision", "fit", *common, *extra, env=_env())
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        out[name] = proc
    proc = run_cli(
        "litvision",
        "sweep",
        "experiment=digits_cnn",
        *common,
        f"model.optimizer.lr={LR_B}",
        "logger=csv,tensorboard",
        env=_env(),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out["sweep"] = proc
    return out


def _foreign(proc) -> list[str]:
    lines = (proc.stdout + proc.stderr).splitlines()
    # The start panel (│ ...) quotes the user's overrides, `logger=mlflow` included.
    return [
        ln
        for ln in lines
        if not OURS.match(ln) or (not ln.startswith("│") and any(t in ln for t in THIRD_PARTY))
    ]


@pytest.mark.parametrize("which", ["wandb", "mlflow", "sweep"])
def test_console_is_litvisions_and_ends_with_the_folder(session: dict, which: str) -> None:
    """Catches: W&B's banner and history back on the console (show_info left on), MLflow's "Creating
    initial MLflow database tables" (its handler not routed to train.log), Hydra's `[HYDRA] #1 : ...`
    lines, `v_num` in the bar, or the run folder printed before the best checkpoint and wall time."""
    proc = session[which]
    assert _foreign(proc) == [], _foreign(proc)
    last = proc.stdout.rstrip().splitlines()[-1]
    if which == "sweep":
        [sweep] = (session["runs"] / "digits_cnn" / "multirun").iterdir()
        assert last == f"sweep folder: {sweep}"
        assert re.search(r"^job 1 of 2$", proc.stdout, re.M)
        assert re.search(
            r"^job 2 of 2: 1 done in \d+ (s|min \d\d s), about \d+ (s|min \d\d s) left$", proc.stdout, re.M
        )
        # Its answer: the comparison of its two runs, without `make compare`.
        assert (
            "Sweep finished: comparing its runs" in proc.stdout
            and f"wrote {sweep}/compare/runs.md" in proc.stdout
        )
    else:
        assert last.startswith("run folder: ") and Path(last.split(": ", 1)[1]).is_dir()
        log = (Path(last.split(": ", 1)[1]) / "train.log").read_text()
        # Nothing lost: the libraries' lines are in the run's log file.
        assert (
            ("wandb: Tracking run with wandb" in log)
            if which == "wandb"
            else ("Creating initial MLflow" in log)
        )
    assert "Epoch 2/2" in proc.stdout and "Epoch 0/" not in proc.stdout


def test_compare_groups_by_lr_only_and_draws_every_logger(session: dict) -> None:
    """Catches: groups keyed by logger.*/paths.* (four groups of one instead of two of two), a run
    logged with W&B or MLflow alone missing from the curves (only csv/metrics.csv read), and a
    library warning (scipy, matplotlib's tight_layout) on stderr. The MLflow run logs to the shared
    store (`logger.mlflow.tracking_uri=shared`): its curves are read from there."""
    exp = session["runs"] / "digits_cnn"
    proc = run_cli("litvision", "compare", "--runs", str(exp), env=_env(), check=True)
    assert proc.stderr == "", proc.stderr
    rows = list(csv.DictReader((exp / "compare" / "groups.csv").open()))
    assert {r["group"] for r in rows} == {f"lr={LR_A}", f"lr={LR_B}"}
    assert {r["n"] for r in rows if r["metric"] == "val/acc"} == {"2"}
    assert "2 group(s) by model.optimizer.lr:" in proc.stdout
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("curves: "))
    assert line == "curves: 4 of 4 runs (csv 1, mlflow 1, tensorboard 1, wandb 1)", line
    assert (session["runs"] / "mlflow.db").is_file()
    for run in [p.parent for p in exp.rglob("summary.json")]:
        assert (run / "history.png").stat().st_size > 5_000, run
