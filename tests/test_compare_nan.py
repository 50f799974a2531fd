"""`litvision compare` with a diverged run (issue 21, point 6): a finished run whose metrics are
NaN is marked as such, and its group says it lost that run from its means, and why, instead of
listing it "ok" with blank cells and a silently smaller n.

Three replicates of one real digits_cnn run: copies of its folder, whose summary.json metrics are
rewritten through the writer every run uses (utils.run.write_summary), so the diverged one holds
NaN exactly as a diverged training leaves it.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest
from conftest import compose_cfg, run_cli


@pytest.fixture(scope="module")
def replicates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from litvision.train import train
    from litvision.utils.run import write_summary

    runs = tmp_path_factory.mktemp("runs")
    cfg = compose_cfg(
        [
            "experiment=digits_cnn",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1",
            "trainer.limit_test_batches=1",
            "logger=csv",
        ],
        runs,
    )
    run = Path(train(cfg)["run_dir"])
    group = tmp_path_factory.mktemp("replicates")
    for name, acc in (("r1", 0.5), ("r2", 0.7), ("r3", float("nan"))):
        shutil.copytree(run, group / name)
        summary = json.loads((group / name / "summary.json").read_text())
        summary["best_val"]["val/acc"] = acc
        if math.isnan(acc):  # the diverged one: its losses are NaN too
            summary["best_val"]["val/loss"] = summary["test"]["test/loss"] = float("nan")
        write_summary(group / name, summary)
    return group


def test_a_run_with_nan_metrics_is_marked_and_its_group_says_it_lost_it(replicates: Path) -> None:
    """Catches: the run still listed "ok" (status not marked), and the lost count dropped (the group's
    n silently 2 of 3: no "(n=2, 1 lost)" cell, no lost column in groups.csv)."""
    proc = run_cli("litvision", "compare", str(replicates), check=True)
    out = proc.stdout
    r3 = next(line for line in out.splitlines() if line.startswith("│ r3"))
    assert "NaN metrics: val/acc, val/loss, test/loss" in r3 and " ok " not in r3, r3
    assert "group [all runs] lost 1 of its 3 finished run(s) from the mean of val/acc" in " ".join(
        out.split()
    )
    assert "(run r3: val/acc, val/loss, test/loss)" in " ".join(out.split())
    assert "(n=2, 1 lost)" in out
    rows = {r["metric"]: r for r in csv.DictReader((replicates / "compare" / "groups.csv").open())}
    assert rows["val/acc"]["n"] == "2" and rows["val/acc"]["lost"] == "1"
    assert abs(float(rows["val/acc"]["mean"]) - 0.6) < 1e-9  # the two finite runs only
    assert rows["test/acc"]["n"] == "3" and rows["test/acc"]["lost"] == "0"
    md = (replicates / "compare" / "groups.md").read_text()
    assert "lost 1 of its 3 finished run(s)" in md and "null in summary.json" in md
