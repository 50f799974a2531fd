"""Seeds and folds aggregated: runs that differ only in `seed` (or `data.fold`) are one group.

    make compare RUNS=runs/digits_cnn/multirun/<stamp>                     # groups found by themselves
    make compare RUNS=... GROUP_BY=model.optimizer.lr                       # group by these keys only
    python -m litvision.compare runs/digits_cnn --group-by model.optimizer.lr,data.batch_size

Per group and metric (every `val/*` and `test/*` of summary.json): n, mean, sample standard
deviation and a 95% confidence interval of the mean from Student's t (mean +- t(0.975, n-1) *
std / sqrt(n)); and a Welch t-test (unequal variances; scipy.stats.ttest_ind(equal_var=False))
between the two best groups by the monitored metric (`monitor`, `monitor_mode` of the runs'
config). Written next to the run table: `groups.md`, `groups.csv` (one row per group and metric),
`groups_<metric>.png` (means with 95% error bars) and `groups_curves_<metric>.png` (mean learning
curve of each group with a band of +- one standard deviation across its runs).

A finished run whose metric is NaN or inf (summary.json holds it as null: the training diverged)
cannot enter that metric's mean: it is counted as lost, and the table, groups.md and groups.csv
(`lost`) say which group lost how many runs, and why, instead of a smaller n alone.

Without GROUP_BY, the groups are made by every config key that differs between runs except the
replicate keys (`seed`, any `*.seed` and `data.fold`) and the keys that say where or how a run logs
(`logger.*`, `paths.*`, `resume`, the progress bar and other callbacks that do not change training:
tracking/run_records.changes_training). A k-fold sweep (`data.fold=0,1,2,3,4`) is then one group:
its cross-validated mean and interval.

Read with care: an interval of a metric bounded by [0, 1] (accuracy, F1, mAP...) is clipped to
[0, 1]; a group of fewer than 3 runs is marked (`n=2*`), its interval is too wide or, with equal
values, falsely narrow. Welch's test compares the best group with the best group that differs from
it in one key only, so that the p-value is about that key; when no such group exists, it says which
keys the best two differ in and computes nothing.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from litvision.errors import UserError

if TYPE_CHECKING:
    from litvision.tracking.run_records import Run

REPLICATE_KEYS = ("seed", "data.fold")
CONFIDENCE = 0.95
# Fewer runs than this: the interval is marked as unreliable.
FEW_RUNS = 3
# A group label longer than this is cut in the console and on plots (groups.md and groups.csv keep it).
LABEL_WIDTH = 60
# Metrics bounded by [0, 1]: their intervals are clipped there.
_BOUNDED = re.compile(r"(^|[/_])(acc|accuracy|f1|precision|recall|map|mar|auroc|auc|iou|dice|jaccard|top\d+)")


def unusable_metrics(run: Run) -> dict[str, str]:
    """The run's metrics that have no usable value, each with why: null in summary.json (how
    litvision writes NaN and inf, utils/run._json_safe), or a NaN/inf number written by hand or
    by another tool."""
    s = run.summary or {}
    out: dict[str, str] = {}
    for section in ("best_val", "test"):
        for name, v in (s.get(section) or {}).items():
            if v is None:
                out[name] = "NaN or inf (null in summary.json)"
            elif isinstance(v, float) and not math.isfinite(v):
                out[name] = f"{v} in summary.json"
    return out


def is_replicate_key(key: str) -> bool:
    """Keys whose values are repetitions of one experiment, not a different experiment."""
    return key in REPLICATE_KEYS or key.endswith(".seed")


@dataclass
class Group:
    label: str
    values: dict[str, Any]
    runs: list[Run] = field(default_factory=list)

    @property
    def ok_runs(self) -> list[Run]:
        return [r for r in self.runs if r.ok]

    def metric(self, name: str) -> list[float]:
        """The metric of every finished run that has it (best_val for val/*, test for test/*)."""
        out = []
        for r in self.ok_runs:
            s = r.summary or {}
            v = (s.get("best_val") or {}).get(name, (s.get("test") or {}).get(name))
            if isinstance(v, (int, float)) and math.isfinite(v):
                out.append(float(v))
        return out

    def lost(self, name: str) -> list[tuple[Run, str]]:
        """The finished runs left out of `name`'s statistics, with why (NaN or inf)."""
        out = []
        for r in self.ok_runs:
            why = unusable_metrics(r).get(name)
            if why:
                out.append((r, why))
        return out


def parse_group_by(text: str | None) -> list[str] | None:
    if text is None or not text.strip():
        return None
    return [k.strip() for k in text.split(",") if k.strip()]


def group_keys(runs: list[Run], group_by: list[str] | None) -> list[str]:
    """The keys that tell groups apart: `group_by` (checked), or the differing non-replicate keys."""
    from litvision.tracking.run_records import changes_training, differing_keys

    differing = differing_keys(runs)
    if group_by is None:
        return [k for k in differing if not is_replicate_key(k) and changes_training(k)]
    known = set().union(*(set(r.composed) | set(r.resolved) for r in runs))
    unknown = [k for k in group_by if k not in known]
    if unknown:
        hint = ", ".join(differing) if differing else "none: every run has the same config"
        raise UserError(
            f"GROUP_BY={','.join(group_by)}: no run has the config key {unknown[0]}; "
            f"the keys that differ between these runs are: {hint}."
        )
    return list(group_by)


def make_groups(runs: list[Run], keys: list[str]) -> list[Group]:
    from litvision.tracking.run_records import _value

    groups: dict[str, Group] = {}
    for r in runs:
        values = {k: _value(r, k) for k in keys}
        ident = json.dumps(values, sort_keys=True, default=str)
        if ident not in groups:
            label = (
                ", ".join(f"{k.rsplit('.', 1)[-1]}={show_value(v)}" for k, v in values.items()) or "all runs"
            )
            groups[ident] = Group(label=label, values=values)
        groups[ident].runs.append(r)
    return list(groups.values())


def show_value(v: Any) -> Any:
    """A config value as a person reads it: 0.0 read back from a table as 0 (`data.fold=0`)."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return int(v)
    return v


def cap(label: str, width: int = LABEL_WIDTH) -> str:
    """One line of at most `width` characters."""
    label = " ".join(label.split())
    return label if len(label) <= width else label[: width - 1] + "…"


def is_bounded(metric: str, values: list[float]) -> bool:
    """An accuracy-like metric: its name says so and every value lies in [0, 1]."""
    name = metric.split("/", 1)[-1]
    return bool(_BOUNDED.search(name)) and all(0.0 <= v <= 1.0 for v in values)


def describe(values: list[float], bounded: bool = False) -> dict[str, float | int | None]:
    """n, mean, std (n-1), and the 95% Student-t interval of the mean (None where n is too small),
    clipped to [0, 1] when `bounded` (an accuracy cannot be 1.02)."""
    import numpy as np
    from scipy import stats

    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "ci_low": None, "ci_high": None}
    mean = float(np.mean(values))
    if n < 2:
        return {"n": n, "mean": mean, "std": None, "ci_low": None, "ci_high": None}
    std = float(np.std(values, ddof=1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * std / math.sqrt(n)
    low, high = mean - half, mean + half
    if bounded:
        low, high = max(0.0, low), min(1.0, high)
    return {"n": n, "mean": mean, "std": std, "ci_low": low, "ci_high": high}


def metric_names(groups: list[Group]) -> list[str]:
    names: set[str] = set()
    for g in groups:
        for r in g.ok_runs:
            s = r.summary or {}
            names |= set(s.get("best_val") or {}) | set(s.get("test") or {})
    return sorted(names, key=lambda c: (not c.startswith("val/"), c))


def _mode(runs: list[Run], monitor: str) -> str:
    for r in runs:
        mode = r.resolved.get("monitor_mode")
        if mode in ("min", "max"):
            return str(mode)
    return "min" if "loss" in monitor else "max"


def keys_between(a: Group, b: Group) -> list[str]:
    """The group keys whose values differ between two groups."""
    return [
        k
        for k in a.values
        if json.dumps(a.values[k], default=str) != json.dumps(b.values.get(k), default=str)
    ]


def welch_best_two(groups: list[Group], monitor: str, mode: str) -> dict[str, Any] | None:
    """Welch's t-test on `monitor` between the best group and the best group that differs from it in
    one key only (n >= 2 each). When none does, no test: the result names the keys in which the two
    best groups differ (`differ_in`), since a p-value between them would not be about one choice."""
    from scipy import stats

    ranked = [g for g in groups if len(g.metric(monitor)) >= 2]
    if len(ranked) < 2:
        return None
    ranked.sort(key=lambda g: sum(g.metric(monitor)) / len(g.metric(monitor)), reverse=mode == "max")
    a = ranked[0]
    b = next((g for g in ranked[1:] if len(keys_between(a, g)) <= 1), None)
    base = {"metric": monitor, "mode": mode, "best": a.label}
    if b is None:
        return {
            **base,
            "second": ranked[1].label,
            "differ_in": keys_between(a, ranked[1]),
            "t": None,
            "p_value": None,
        }
    xa, xb = a.metric(monitor), b.metric(monitor)
    with warnings.catch_warnings():
        # Equal values in both groups: scipy warns of "catastrophic cancellation"; p is then n/a.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(xa, xb, equal_var=False)
    p, t = float(result.pvalue), float(result.statistic)
    return {
        **base,
        "second": b.label,
        "differ_in": keys_between(a, b),
        "t": t if math.isfinite(t) else None,
        "p_value": p if math.isfinite(p) else None,
    }


def aggregate(runs: list[Run], group_by: list[str] | None = None) -> dict[str, Any] | None:
    """Groups, their statistics and the Welch test; None when there is nothing to aggregate
    (no group holds two finished runs, and no GROUP_BY was asked for)."""
    keys = group_keys(runs, group_by)
    groups = make_groups(runs, keys)
    if group_by is None and not any(len(g.ok_runs) >= 2 for g in groups):
        return None
    metrics = metric_names(groups)
    monitor = next((r.monitor for r in runs if r.ok), "val/acc")
    bounded = {m: is_bounded(m, [v for g in groups for v in g.metric(m)]) for m in metrics}
    stats = {
        g.label: {m: {**describe(g.metric(m), bounded[m]), "lost": len(g.lost(m))} for m in metrics}
        for g in groups
    }
    welch = welch_best_two(groups, monitor, _mode(runs, monitor))
    return {
        "keys": keys,
        "groups": groups,
        "metrics": metrics,
        "stats": stats,
        "welch": welch,
        "monitor": monitor,
    }


# -- output ---------------------------------------------------------------------------------------
def _n(n: int) -> str:
    """The number of runs, marked when too few for an interval to mean much."""
    return f"{n}*" if 0 < n < FEW_RUNS else str(n)


def _num(v: float | None, digits: int = 4) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def _interval(s: dict[str, Any]) -> str:
    """`0.9703 ± 0.0135`, or `0.9703 [0.9231, 1.0000]` where the interval was clipped to [0, 1]."""
    half = s["ci_high"] - s["mean"]
    if math.isclose(s["mean"] - s["ci_low"], half, rel_tol=1e-9, abs_tol=1e-12):
        return f"{_num(s['mean'])} ± {_num(half)}"
    return f"{_num(s['mean'])} [{_num(s['ci_low'])}, {_num(s['ci_high'])}]"


def _cell(s: dict[str, Any]) -> str:
    if s["mean"] is None:
        text = ""
    elif s["ci_low"] is None:
        text = _num(s["mean"])
    else:
        text = _interval(s)
    # A mean over fewer runs than the group has says so where it is read (the lost runs: a note).
    return f"{text} (n={s['n']}, {s['lost']} lost)".strip() if s.get("lost") else text


def shown_metrics(agg: dict[str, Any], all_metrics: bool) -> list[str]:
    if all_metrics:
        return agg["metrics"]
    name = agg["monitor"].split("/", 1)[-1]
    return [m for m in agg["metrics"] if m.split("/", 1)[-1] in (name, "loss")]


def lost_lines(agg: dict[str, Any], metrics: list[str] | None = None) -> list[str]:
    """One line per group that lost runs: which metrics, how many of its runs, which and why."""
    lines = []
    shown = metrics if metrics is not None else agg["metrics"]
    for g in agg["groups"]:
        lost: dict[str, list[str]] = {}  # run label -> its lost metrics
        whys: set[str] = set()
        for m in shown:
            for r, why in g.lost(m):
                lost.setdefault(r.label, []).append(m)
                whys.add(why)
        if not lost:
            continue
        names = [m for m in shown if any(m in ms for ms in lost.values())]
        runs = "; ".join(f"run {label}: {', '.join(ms)}" for label, ms in lost.items())
        lines.append(
            f"group [{g.label}] lost {len(lost)} of its {len(g.ok_runs)} finished run(s) from the mean of "
            f"{', '.join(names)} ({runs}), {' / '.join(sorted(whys))}: a diverged training; "
            "n counts the runs left."
        )
    return lines


def welch_line(agg: dict[str, Any]) -> str | None:
    w = agg["welch"]
    if not w:
        return None
    if len(w.get("differ_in") or []) > 1:
        return (
            f"No Welch t-test on {w['metric']}: the best two groups [{cap(w['best'])}] and "
            f"[{cap(w['second'])}] differ in {len(w['differ_in'])} keys ({', '.join(w['differ_in'])}), "
            "and no group differs from the best in one key only; GROUP_BY=<key> compares one choice."
        )
    p = "n/a (no variance)" if w["p_value"] is None else f"{w['p_value']:.4g}"
    t = "n/a" if w["t"] is None else f"{w['t']:.3f}"
    return f"Welch t-test on {w['metric']}, best two groups: [{w['best']}] vs [{w['second']}]: t={t}, p={p}"


def few_runs_line(agg: dict[str, Any], metrics: list[str]) -> str | None:
    """The caveat for groups marked n<3: their interval says little."""
    few = [
        g.label
        for g in agg["groups"]
        if 0 < max((agg["stats"][g.label][m]["n"] for m in metrics), default=0) < FEW_RUNS
    ]
    if not few:
        return None
    return (
        f"* n < {FEW_RUNS} in {len(few)} group(s): an interval from so few runs is unreliable "
        "(too wide, or 0 when the runs agree); add seeds (seed=1,2,3) to trust it."
    )


def groups_frame(agg: dict[str, Any]) -> Any:
    """One row per group and metric: the group's keys, n, mean, std and the 95% interval."""
    import pandas as pd

    rows = []
    for g in agg["groups"]:
        for m in agg["metrics"]:
            values = {k: show_value(v) for k, v in g.values.items()}
            rows.append({"group": g.label, **values, "metric": m, **agg["stats"][g.label][m]})
    # object: an int key with a missing value stays `0`, not `0.0` (pandas' float column)
    return pd.DataFrame(rows, dtype=object)


def to_markdown(agg: dict[str, Any]) -> str:
    metrics = agg["metrics"]
    head = ["group", "n", *(f"{m} (mean ± 95% CI)" for m in metrics), *(f"{m} std" for m in metrics)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in agg["groups"]:
        st = agg["stats"][g.label]
        n = max((st[m]["n"] for m in metrics), default=0)
        cells = [g.label, _n(n), *(_cell(st[m]) for m in metrics), *(_num(st[m]["std"]) for m in metrics)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    text = "\n".join(lines) + "\n"
    notes = lost_lines(agg)
    few = few_runs_line(agg, metrics)
    if few:
        text += f"\n{few}\n"
    if notes:
        text += "\n" + "".join(f"- {n}\n" for n in notes)
    line = welch_line(agg)
    return text + (f"\n{line}\n" if line else "")


def print_groups(agg: dict[str, Any], all_metrics: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table

    metrics = shown_metrics(agg, all_metrics)
    by = (
        f"by {', '.join(agg['keys'])}"
        if agg["keys"]
        else "(the runs differ only in seed, data.fold or how they log)"
    )
    table = Table(
        title=f"{len(agg['groups'])} group(s) {by}: mean ± 95% CI (Student t)", title_justify="left"
    )
    table.add_column("group", style="bold", no_wrap=True)
    table.add_column("n", justify="right")
    for m in metrics:
        table.add_column(m, justify="right")
        table.add_column(f"{m} std", justify="right")
    for g in agg["groups"]:
        st = agg["stats"][g.label]
        n = max((st[m]["n"] for m in metrics), default=0)
        cells = []
        for m in metrics:
            cells += [_cell(st[m]), _num(st[m]["std"])]
        table.add_row(cap(g.label), _n(n), *cells)
    console = Console(width=max(160, Console().width))
    console.print(table)
    for note in lost_lines(agg, metrics):
        console.print(f"note: {note}", highlight=False, markup=False, style="yellow")
    few = few_runs_line(agg, metrics)
    if few:
        console.print(few, highlight=False, markup=False)
    line = welch_line(agg)
    if line:
        console.print(line, highlight=False, markup=False)


def write_groups(agg: dict[str, Any], out_dir: Path, title: str) -> list[Path]:
    """groups.md and groups.csv (the figures: tracking/compare_plots.plot_groups)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "groups.md").write_text(f"# {title}\n\n" + to_markdown(agg))
    groups_frame(agg).to_csv(out_dir / "groups.csv", index=False)
    return [out_dir / "groups.md", out_dir / "groups.csv"]
