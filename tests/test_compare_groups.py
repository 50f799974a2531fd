"""`make compare` aggregates seeds: a real 3 seeds x 2 learning rates sweep of digits_cnn gives two
groups of three runs, with their mean, standard deviation, Student-t 95% interval and a Welch
t-test, each recomputed here by hand from the runs' summary.json files."""

from __future__ import annotations

import csv
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import run_cli
from test_sweep_compare import TINY, make

# t(0.975, df=2), the 95% two-sided critical value for three runs, from Student's t with two degrees
# of freedom in closed form: its quantile at u is (2u - 1) / sqrt(2u(1 - u)) (a printed table's
# 4.3027 is rounded; 1e-12 tolerances below need the exact value).
T_975_DF2 = (2 * 0.975 - 1) / math.sqrt(2 * 0.975 * (1 - 0.975))
LRS = ("0.001", "0.03")


@pytest.fixture(scope="module")
def seeds_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs_dir = tmp_path_factory.mktemp("seeds") / "runs"
    run_cli(
        "litvision.train",
        "--multirun",
        "experiment=digits_cnn",
        *TINY.split(),
        "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=2",
        f"model.optimizer.lr={','.join(LRS)}",
        "seed=1,2,3",
        f"paths.runs_dir={runs_dir}",
        check=True,
    )
    [sweep] = (runs_dir / "digits_cnn" / "multirun").iterdir()
    return sweep


def _by_hand(values: list[float]) -> tuple[float, float, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, std, T_975_DF2 * std / math.sqrt(n)


def _welch_p(a: list[float], b: list[float]) -> float:
    """Welch's t statistic and Welch-Satterthwaite degrees of freedom, written out."""
    from scipy import stats

    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    t = (np.mean(a) - np.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return float(2 * stats.t.sf(abs(t), df))


@pytest.mark.slow
def test_compare_groups_seeds_with_mean_interval_and_welch(seeds_sweep: Path) -> None:
    """Catches seeds left as a grouping key (six groups of one), a population std (ddof=0), a normal
    instead of a Student-t interval, a Student (equal-variance) t-test instead of Welch's, and an
    accuracy interval past [0, 1]."""
    proc = make("compare", f"RUNS={seeds_sweep}")
    assert proc.returncode == 0, proc.stderr
    summaries = {p.parent.name: json.loads(p.read_text()) for p in sorted(seeds_sweep.glob("*/summary.json"))}
    assert len(summaries) == 6

    lr_of = {
        name: str(
            yaml.safe_load((seeds_sweep / name / "config.yaml").read_text())["model"]["optimizer"]["lr"]
        )
        for name in summaries
    }
    values = {
        lr: {
            m: [
                s["best_val" if m.startswith("val/") else "test"][m]
                for n, s in summaries.items()
                if lr_of[n] == lr
            ]
            for m in ("val/acc", "test/acc")
        }
        for lr in LRS
    }
    rows = list(csv.DictReader((seeds_sweep / "compare" / "groups.csv").open()))
    assert {r["group"] for r in rows} == {f"lr={lr}" for lr in LRS}
    for lr in LRS:
        for metric in ("val/acc", "test/acc"):
            [row] = [r for r in rows if r["group"] == f"lr={lr}" and r["metric"] == metric]
            mean, std, half = _by_hand(values[lr][metric])
            assert int(row["n"]) == 3
            assert math.isclose(float(row["mean"]), mean, abs_tol=1e-12)
            assert math.isclose(float(row["std"]), std, abs_tol=1e-12)
            # An accuracy's interval is clipped to [0, 1] (a 3-run interval of 0.34 may reach below 0).
            low, high = max(0.0, mean - half), min(1.0, mean + half)
            assert math.isclose(float(row["ci_low"]), low, abs_tol=1e-12)
            assert math.isclose(float(row["ci_high"]), high, abs_tol=1e-12)
            if metric == "val/acc":
                clipped = (low, high) != (mean - half, mean + half)
                shown = f"{mean:.4f} [{low:.4f}, {high:.4f}]" if clipped else f"{mean:.4f} ± {half:.4f}"
                assert shown in proc.stdout

    a, b = values["0.001"]["val/acc"], values["0.03"]["val/acc"]
    best, second = (("0.03", b), ("0.001", a)) if np.mean(b) >= np.mean(a) else (("0.001", a), ("0.03", b))
    p = _welch_p(best[1], second[1])
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("Welch t-test"))
    assert f"[lr={best[0]}] vs [lr={second[0]}]" in line and f"p={p:.4g}" in line
    md = (seeds_sweep / "compare" / "groups.md").read_text()
    assert line in md and "| lr=0.001 | 3 |" in md and "| lr=0.03 | 3 |" in md
    for png in ("groups_acc.png", "groups_curves_val_acc.png"):
        assert (seeds_sweep / "compare" / png).stat().st_size > 10_000


@pytest.mark.slow
def test_group_by_overrides_and_unknown_key_is_one_line(seeds_sweep: Path, tmp_path: Path) -> None:
    """Catches GROUP_BY being ignored, and an unknown key that crashes or writes a half comparison."""
    out = tmp_path / "by_seed"
    proc = run_cli("litvision.compare", str(seeds_sweep), "--group-by", "seed", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = [r for r in csv.DictReader((out / "groups.csv").open()) if r["metric"] == "val/acc"]
    assert sorted((r["group"], r["n"]) for r in rows) == [("seed=1", "2"), ("seed=2", "2"), ("seed=3", "2")]

    copy = tmp_path / "copy"
    shutil.copytree(seeds_sweep, copy, ignore=shutil.ignore_patterns("compare"))
    proc = make("compare", f"RUNS={copy}", "GROUP_BY=model.optimizer.lrr")
    assert proc.returncode != 0
    [line] = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert "GROUP_BY=model.optimizer.lrr: no run has the config key model.optimizer.lrr" in line
    assert "model.optimizer.lr, seed" in line and "Traceback" not in proc.stderr
    assert not (copy / "compare").exists()


@dataclass
class _Record:
    """A finished run as aggregate reads it: its summary (what run_records gives a Group)."""

    summary: dict
    ok: bool = True


def test_welch_compares_the_best_two_of_three_groups() -> None:
    """Three groups of three runs: Welch's test is between the best and the second best by the monitored
    metric, in its direction (max for accuracy, min for a loss), with scipy's statistic for that pair.
    Catches: the best compared with the worst (`ranked[0], ranked[-1]`; the sweep fixture has two groups
    only, so both are the same there), and the direction inverted (the worst two compared)."""
    from scipy import stats

    from litvision.aggregate import Group, welch_best_two

    values = {"low": [0.90, 0.91, 0.93], "mid": [0.95, 0.96, 0.96], "high": [0.98, 0.99, 0.985]}
    groups = [
        Group(
            label=name, values={}, runs=[_Record({"best_val": {"val/acc": v, "val/loss": 1 - v}}) for v in vs]
        )
        for name, vs in values.items()
    ]
    acc = welch_best_two(groups, "val/acc", "max")
    assert (acc["best"], acc["second"]) == ("high", "mid")
    expected = stats.ttest_ind(values["high"], values["mid"], equal_var=False)
    assert math.isclose(acc["t"], float(expected.statistic), rel_tol=1e-12)
    assert math.isclose(acc["p_value"], float(expected.pvalue), rel_tol=1e-12)
    loss = welch_best_two(groups, "val/loss", "min")
    assert (loss["best"], loss["second"]) == ("high", "mid")
