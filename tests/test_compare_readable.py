"""`make compare` stays readable with many differing keys, and a glob's comparison has its own folder.

The run folders are written the way a run writes them (the composed config in `.hydra/config.yaml`,
the resolved one in `config.yaml`, the command line in `.hydra/overrides.yaml`, `summary.json`),
from real composed configs of the default experiment: comparing reads nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

# Keys that changed between the runs without being on their command lines (a config edited between
# runs, other defaults): with the swept lr, 12 differing keys in all.
DRIFT = [
    "data.batch_size={}",
    "data.val_fraction=0.1{}",
    "model.net.width={}",
    "model.net.dropout=0.0{}",
    "model.optimizer.weight_decay=1e-{}",
    "model.label_smoothing=0.0{}",
    "model.scheduler.warmup_epochs={}",
    "model.scheduler.min_lr_ratio=0.00{}",
    "model.scheduler.step_epochs={}",
    "model.scheduler.gamma=0.{}",
    "trainer.max_epochs={}",
]
LONG = "model.net.pool_size"  # also differs, with the same value in two runs


def write_run(folder: Path, overrides: list[str], command_line: list[str], acc: float) -> None:
    """A finished run's files, from the config `litvision fit <overrides>` composes."""
    from omegaconf import OmegaConf

    from litvision.config import compose

    cfg = compose(["experiment=digits_cnn", *overrides, f"paths.runs_dir={folder.parent}"])
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    (folder / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(command_line)))
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    summary = {
        "best_val": {"val/acc": acc, "val/loss": 1 - acc},
        "test": {"test/acc": acc},
        "monitor": "val/acc",
    }
    (folder / "summary.json").write_text(json.dumps({**summary, "epochs_completed": 3, "wall_time_s": 9.5}))


@pytest.fixture(scope="module")
def experiment_folder(tmp_path_factory) -> Path:
    """runs/digits_cnn/ with six runs whose configs differ in 13 keys; only the lr was swept."""
    exp = tmp_path_factory.mktemp("cmp") / "runs" / "digits_cnn"
    for i in range(1, 7):
        swept = [f"model.optimizer.lr=0.00{i}"]
        drift = [d.format(i + 1) for d in DRIFT] + [f"{LONG}={1 + i % 2}"]
        write_run(
            exp / f"2026-11-2{i}_10-00-00", swept + drift, ["experiment=digits_cnn", *swept], 0.9 + i / 100
        )
    return exp


def _table_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.strip()[:1] in "┃│┏┡└━┗" and line.strip()]


def test_many_differing_keys_give_at_most_eight_key_columns(experiment_folder: Path) -> None:
    """Catches: every differing key printed as a column (13 here, 65 in the issue: zero-width
    columns), the swept key ranked out of the table, or keys missing from runs.md."""
    proc = run_cli(
        "litvision", "compare", "--exp", "digits_cnn", "--runs-dir", str(experiment_folder.parent), check=True
    )
    out = proc.stdout
    header = next(line for line in out.splitlines() if line.startswith("┃"))
    columns = [c.strip() for c in header.strip().strip("┃").split("┃")]
    key_headers = columns[1 : columns.index("status")]
    assert 1 <= len(key_headers) <= 8, columns
    assert columns[columns.index("status") :] == [
        "status",
        "val/acc",
        "val/loss",
        "test/acc",
        "epochs",
        "wall_time_s",
    ]
    # Short headers are whole names (no "…", no folding), each spelled out in one legend line.
    legend = next(line for line in out.splitlines() if line.startswith("key columns: ")).split(": ", 1)[1]
    full = dict(item.split(" = ") for item in legend.split(", "))
    assert list(full) == key_headers and full["lr"] == "model.optimizer.lr"
    assert key_headers[0] == "lr"  # the swept key comes first
    assert not any("…" in line for line in _table_lines(out))
    assert max(len(line.rstrip()) for line in _table_lines(out)) <= 160  # the console Rich was given
    assert f"{len(key_headers)} of the 13 config keys that differ are shown" in out
    runs_md = (experiment_folder / "compare" / "runs.md").read_text()
    md_header = runs_md.splitlines()[2]
    for key in ["model.optimizer.lr", LONG, *(d.split("=")[0] for d in DRIFT)]:
        assert f" {key} |" in md_header, key


def test_comparing_a_glob_leaves_the_experiments_compare_folder_alone(experiment_folder: Path) -> None:
    """Catches: a glob's comparison written over runs/<exp>/compare/ (the experiment's own table),
    and a glob folder that does not say where it went or which runs it holds."""
    run_cli("litvision", "compare", "--runs", str(experiment_folder), check=True)
    own = experiment_folder / "compare"
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in own.iterdir() if p.is_file()}
    assert "runs.md" in before and "runs.csv" in before

    pattern = f"{experiment_folder}/2026-11-2[12]_*"
    proc = run_cli("litvision", "compare", "--runs", pattern, check=True)
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in own.iterdir() if p.is_file()}
    assert after == before  # same bytes, not even rewritten
    (glob_dir,) = [p for p in own.iterdir() if p.is_dir() and p.name.startswith("glob-")]
    assert f"wrote {glob_dir}/runs.md" in proc.stdout and "written to its own folder" in proc.stdout
    md = (glob_dir / "runs.md").read_text()
    assert "2026-11-21_10-00-00" in md and "2026-11-22_10-00-00" in md and "2026-11-23" not in md
    assert (glob_dir / "selection.txt").read_text().splitlines()[0] == pattern
    # The same glob again refreshes the same folder; another glob gets another one.
    run_cli("litvision", "compare", "--runs", pattern, check=True)
    run_cli("litvision", "compare", "--runs", f"{experiment_folder}/2026-11-2[34]_*", check=True)
    assert len([p for p in own.iterdir() if p.is_dir() and p.name.startswith("glob-")]) == 2
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in own.iterdir() if p.is_file()} == before


def test_make_compare_on_a_glob_says_where_it_wrote(experiment_folder: Path) -> None:
    """Catches: `make compare RUNS='<glob>'` (the README's line) not reaching the glob folder."""
    import subprocess
    import sys

    proc = subprocess.run(
        [
            "make",
            "--no-print-directory",
            f"PYTHON={sys.executable}",
            "compare",
            f"RUNS={experiment_folder}/2026-11-2*",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"wrote {experiment_folder}/compare/glob-" in proc.stdout


def test_integer_keys_print_as_integers(tmp_path: Path) -> None:
    """A k-fold pair and a run without k-fold (`data.fold` 0, 1 and null): the folds print as 0 and 1.
    Catches: the key columns left to pandas (a column with a null becomes floats: `0.0`, `1.0`), in
    the console table or in runs.md."""
    exp = tmp_path / "runs" / "digits_cnn"
    for i, fold in enumerate(["0", "1", "null"]):
        overrides = [f"data.fold={fold}", "data.num_folds=" + ("null" if fold == "null" else "2")]
        write_run(exp / f"2026-11-2{i + 1}_10-00-00", overrides, overrides, 0.9 + i / 100)
    proc = run_cli("litvision", "compare", "--runs", str(exp), env={"COLUMNS": "200"}, check=True)
    md = (exp / "compare" / "runs.md").read_text()
    head = [c.strip() for c in md.splitlines()[2].strip("|").split("|")]
    folds = [
        [c.strip() for c in line.strip("|").split("|")][head.index("data.fold")]
        for line in md.splitlines()[4:7]
    ]
    assert folds == ["0", "1", ""], folds
    rows = [line for line in _table_lines(proc.stdout) if "2026-11-2" in line]
    assert len(rows) == 3 and not any("0.0 " in r or "1.0 " in r for r in rows), rows


def test_welch_needs_groups_that_differ_in_one_key() -> None:
    """The best two groups differ in lr and batch size: Welch's test moves to the best group that
    differs from the best in one key; with none, it tests nothing and names the keys.
    Catches: the best two compared whatever they differ in (the issue's 3-epoch lr sweep against a
    3-fold CV group), and a missing "differ in" line (a p-value printed for the mixed pair)."""
    from test_compare_groups import _Record

    from litvision.aggregate import Group, welch_best_two, welch_line

    def group(lr: float, bs: int, accs: list[float]) -> Group:
        return Group(
            label=f"lr={lr}, batch_size={bs}",
            values={"model.optimizer.lr": lr, "data.batch_size": bs},
            runs=[_Record({"best_val": {"val/acc": a}}) for a in accs],
        )

    best, mixed, one_key = (
        group(0.01, 64, [0.99, 0.98]),
        group(0.001, 32, [0.97, 0.975]),
        group(0.001, 64, [0.9, 0.91]),
    )
    w = welch_best_two([best, mixed, one_key], "val/acc", "max")
    assert (w["best"], w["second"], w["differ_in"]) == (best.label, one_key.label, ["model.optimizer.lr"])
    assert w["p_value"] is not None
    w = welch_best_two([best, mixed], "val/acc", "max")
    assert w["p_value"] is None and w["differ_in"] == ["model.optimizer.lr", "data.batch_size"]
    line = welch_line({"welch": w})
    assert line.startswith("No Welch t-test on val/acc") and "differ in 2 keys" in line


def test_accuracy_intervals_are_clipped_and_few_runs_marked() -> None:
    """0.99 and 1.0 over two runs: the interval stops at 1 and the cell says so; n=2 is marked.
    Catches: an accuracy interval past 1.0 ("0.9950 ± 0.0635"), and n < 3 shown like any other n."""
    from litvision.aggregate import _cell, _n, describe

    s = describe([0.99, 1.0], bounded=True)
    assert s["ci_high"] == 1.0 and s["ci_low"] < 0.99
    assert _cell(s) == f"0.9950 [{s['ci_low']:.4f}, 1.0000]"
    loss = describe([0.99, 1.0], bounded=False)
    assert loss["ci_high"] > 1.0 and "±" in _cell(loss)
    assert (_n(2), _n(3)) == ("2*", "3")
