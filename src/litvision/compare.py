"""Compare runs without any server: one row per run, the config keys that differ, the metrics.

    make compare                                   # every run of EXP (default digits_cnn): runs/digits_cnn/
    make compare EXP=digits_cnn
    make compare RUNS=runs/digits_cnn/multirun/2026-11-21_21-30-00-000000     # one sweep
    make compare RUNS='runs/*/2026-11-2*'                                       # a glob of run folders
    python -m litvision.compare runs/digits_cnn --out /tmp/cmp --all-metrics

Reads each run folder's `summary.json`, its configs (`.hydra/config.yaml` as composed, with
interpolations kept, so `data.seed: ${seed}` does not count as a second difference; and the
resolved `config.yaml` for the values shown) and its learning curves from whichever logger it used
(CSV, TensorBoard, MLflow store, W&B offline file: tracking/curves). Prints a rich table (at most
8 differing keys, the most informative first: see `ranked_keys`) and writes, into `<folder>/compare/`
(a glob or a list of runs: `<their common folder>/compare/glob-<hash>/`, never over the folder's own
comparison): `runs.md` (the table in markdown, every key and metric), `runs.csv`,
`loss.png` and one PNG per main metric (learning curves of every run, overlaid). Runs that differ
only in seed or data.fold are aggregated per group (n, mean, std, 95% CI, Welch t-test between the
best two; `--group-by` / GROUP_BY= chooses the keys): `groups.md`, `groups.csv`, `groups_*.png`
(see litvision.aggregate).

A run without `summary.json` (crashed, killed, or still running) is listed as such; the other
runs are still compared. A finished run whose metrics are NaN or inf (a diverged training) is
listed as "NaN metrics: <names>", and its group says which means it was left out of. Does not import torch: it starts in about a second.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

from litvision.errors import UserError
from litvision.tracking.run_records import (
    Run,
    _common_root,
    _value,
    changes_training,
    compare_frame,
    differing_keys,
    is_run_dir,
    load_runs,
)

COMPARE_DIR = "compare"
# The console table shows at most this many differing config keys (runs.md has them all): past
# ~8, a terminal's columns shrink to nothing (65 keys printed as zero-width columns).
MAX_KEY_COLUMNS = 8
# Longer values (lists, dicts, long names) are cut in the console; runs.md and runs.csv keep them whole.
MAX_CELL = 24


def ranked_keys(runs: list[Run], keys: list[str], group_by: list[str] | None = None) -> list[str]:
    """`keys` (the differing ones), most informative first: the GROUP_BY keys, the keys set on the
    runs' command lines (sweep parameters) unless they only say how a run logs, keys every run has (a key missing from some runs is
    usually a newer config, not a choice), then the keys with the most distinct values."""
    chosen = set(group_by or ())
    overridden = set().union(*(r.overridden for r in runs)) if runs else set()

    def is_overridden(k: str) -> bool:
        # `data=image_folder` (a group choice) shows as the group's `_target_`.
        return k in overridden or (k.endswith("._target_") and k[: -len("._target_")] in overridden)

    def rank(k: str) -> tuple:
        present = [r for r in runs if k in r.resolved or k in r.composed]
        distinct = {json.dumps(_value(r, k), sort_keys=True, default=str) for r in present}
        return (
            k not in chosen,
            not changes_training(k),  # where and how a run logs: last
            not is_overridden(k),
            len(present) < len(runs),
            -len(distinct),
            k,
        )

    return sorted(keys, key=rank)


def default_out_dir(targets: list[str | Path], runs: list[Run]) -> Path:
    """`<folder>/compare/` for one experiment or sweep folder: that folder's own comparison. Any
    other choice of runs (a glob, several folders, one run) gets a folder of its own inside it,
    `compare/glob-<hash>/` or `compare/selection-<hash>/` (the hash of the patterns as given,
    made absolute), so comparing a subset never overwrites the folder's own comparison."""
    if len(targets) == 1 and not glob.has_magic(str(targets[0])):
        folder = Path(targets[0]).expanduser().resolve()
        if folder.is_dir() and not is_run_dir(folder):
            return folder / COMPARE_DIR
    patterns = sorted(os.path.abspath(os.path.expanduser(str(t))) for t in targets)
    kind = "glob" if any(glob.has_magic(p) for p in patterns) else "selection"
    digest = hashlib.sha1("\n".join(patterns).encode()).hexdigest()[:8]
    return _common_root([r.path for r in runs]) / COMPARE_DIR / f"{kind}-{digest}"


def _legend(run: Run, keys: list[str]) -> str:
    """`3 (lr=0.01, seed=2)`: the run and what sets it apart, on one capped line."""
    from litvision.aggregate import cap, show_value

    parts = [f"{k.rsplit('.', 1)[-1]}={show_value(_value(run, k))}" for k in keys[:3]]
    return cap(f"{run.label} ({', '.join(parts)})" if parts else run.label, 48)


def curves_line(sources: dict[str, str | None]) -> str:
    """`curves: 4 of 4 runs (csv 1, mlflow 1, tensorboard 1, wandb 1)`: what the plots could draw."""
    found = [s for s in sources.values() if s]
    counts = ", ".join(f"{name} {found.count(name)}" for name in sorted(set(found)))
    line = f"curves: {len(found)} of {len(sources)} runs" + (f" ({counts})" if counts else "")
    missing = [label for label, s in sources.items() if not s]
    return line + (f"; no logger left curves in: {', '.join(missing)}" if missing else "")


def plot_curves(runs: list[Run], out_dir: Path, sources: dict[str, str | None] | None = None) -> list[Path]:
    """loss.png and <metric>.png of every run (tracking/compare_plots), each run named by the keys
    that set it apart and change training."""
    from litvision.tracking.compare_plots import plot_run_curves

    keys = [k for k in ranked_keys(runs, differing_keys(runs)) if changes_training(k)]
    return plot_run_curves(runs, {r.path: _legend(r, keys) for r in runs}, out_dir, sources)


# -- output ---------------------------------------------------------------------------------------
def _fmt(v: Any, column: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if column == "wall_time_s" and isinstance(v, (int, float)):
        return f"{v:.1f}"
    if column == "epochs" and isinstance(v, (int, float)):
        return str(int(v))
    if isinstance(v, float) and column.startswith(("val/", "test/")):
        return f"{v:.4f}"
    return str(v)


def shown_columns(
    df: Any, runs: list[Run], all_metrics: bool = False, keys: list[str] | None = None
) -> list[str]:
    """Differing keys (`keys`: all of them by default), status, the main metric and loss (val and
    test; all metrics if asked), epochs, time."""
    keys = differing_keys(runs) if keys is None else keys
    metrics = [c for c in df.columns if c.startswith(("val/", "test/"))]
    if not all_metrics:
        names = {m.split("/", 1)[1] for m in {r.monitor for r in runs}} | {"loss"}
        metrics = [c for c in metrics if c.split("/", 1)[1] in names]
    metrics.sort(key=lambda c: (not c.startswith("val/"), c))
    return [*keys, "status", *metrics, "epochs", "wall_time_s"]


def _cut(text: str, width: int = MAX_CELL) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def to_markdown(df: Any, columns: list[str]) -> str:
    head = ["run", *columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, row in df.iterrows():
        cells = [str(label), *(_fmt(row.get(c), c) for c in columns)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def console_width() -> int:
    from rich.console import Console

    return max(160, Console().width)


def _text_width(df: Any, column: str, header: str, cut: bool) -> int:
    cells = [_fmt(row.get(column), column) for _, row in df.iterrows()]
    cells = [_cut(c) if cut else c for c in cells]
    return max([len(header), *map(len, cells)])


def fit_key_columns(
    df: Any, ranked: list[str], others: list[str], width: int
) -> tuple[list[str], dict[str, str]]:
    """(the key columns, their headers): the best-ranked keys, at most MAX_KEY_COLUMNS, by their
    full names when the table then fits `width` characters, else by short names (legend printed),
    dropping the lowest-ranked keys until it fits, so no column is squeezed to nothing."""
    run_width = max([3, *(len(str(label)) for label in df.index)])
    fixed = 1 + (run_width + 3) + sum(_text_width(df, c, c, False) + 3 for c in others)
    keys = ranked[:MAX_KEY_COLUMNS]

    def total(headers: dict[str, str]) -> int:
        return fixed + sum(_text_width(df, k, headers[k], True) + 3 for k in headers)

    full = {k: k for k in keys}
    if total(full) <= width:
        return keys, full
    while keys:
        headers = short_names(keys)
        if total(headers) <= width or len(keys) == 1:
            return keys, headers
        keys = keys[:-1]
    return [], {}


def print_table(
    df: Any, runs: list[Run], columns: list[str], title: str, headers: dict[str, str] | None = None
) -> None:
    from rich.console import Console
    from rich.table import Table

    keys = set(differing_keys(runs))
    short = headers if headers is not None else {c: c for c in columns if c in keys}
    table = Table(title=title, title_justify="left")
    table.add_column("run", style="bold", no_wrap=True)
    for c in columns:
        # Headers wrap rather than end in "…": a cut key name says nothing.
        table.add_column(
            short.get(c, c),
            justify="left" if c in keys or c == "status" else "right",
            style="cyan" if c in keys else None,
            overflow="fold",
        )
    for label, row in df.iterrows():
        cells = [_cut(_fmt(row.get(c), c)) if c in keys else _fmt(row.get(c), c) for c in columns]
        style = None if row.get("status") == "ok" else "yellow"
        table.add_row(str(label), *cells, style=style)
    console = Console(width=console_width())
    console.print(table)
    renamed = [f"{n} = {k}" for k, n in short.items() if n != k]
    if renamed:
        console.print("key columns: " + ", ".join(renamed), highlight=False, markup=False, soft_wrap=True)


def short_names(keys: list[str]) -> dict[str, str]:
    """Each key by its shortest dotted suffix that no other shown key ends with (model.optimizer.lr -> lr)."""
    out = {}
    for k in keys:
        parts = k.split(".")
        for n in range(1, len(parts) + 1):
            name = ".".join(parts[-n:])
            if not any(o != k and (o == name or o.endswith("." + name)) for o in keys):
                break
        out[k] = name
    return out


def _mark_nan_metrics(df: Any, runs: list[Run]) -> list[tuple[Run, dict[str, str]]]:
    """A finished run with NaN/inf metrics is not "ok": its status names them (the cells are blank)."""
    from litvision.aggregate import unusable_metrics

    marked = []
    for r in runs:
        lost = unusable_metrics(r) if r.ok else {}
        if lost:
            df.loc[r.label, "status"] = f"NaN metrics: {', '.join(lost)}"
            marked.append((r, lost))
    return marked


def _group_of(agg: dict[str, Any], run: Run) -> str:
    return next((g.label for g in agg["groups"] if run in g.runs), "?")


def compare(
    targets: list[str | Path],
    out_dir: Path | None = None,
    all_metrics: bool = False,
    group_by: list[str] | None = None,
) -> dict[str, Any]:
    """Load, print, and write the comparison; returns the DataFrame and the files written.

    Runs that differ only in seed (or data.fold) are also aggregated per group (`group_by`
    overrides which keys make the groups): see `litvision.aggregate`.
    """
    from litvision.aggregate import aggregate, print_groups, write_groups

    runs = load_runs(targets)
    # Before anything is written: an unknown GROUP_BY key is refused here.
    agg = aggregate(runs, group_by)
    df = compare_frame(runs)
    nan_runs = _mark_nan_metrics(df, runs)
    # A selection (glob, several folders, one run) gets compare/<kind>-<hash>/, not compare/ itself.
    selection = out_dir is None and default_out_dir(targets, runs).name != COMPARE_DIR
    out_dir = out_dir or default_out_dir(targets, runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = differing_keys(runs)
    others = shown_columns(df, runs, all_metrics, keys=[])
    shown_keys, headers = fit_key_columns(df, ranked_keys(runs, keys, group_by), others, console_width())
    columns = [*shown_keys, *others]
    title = f"{len(runs)} run(s) under {_common_root([r.path for r in runs])}"
    print_table(df, runs, columns, title, headers)
    if not keys and len(runs) > 1:
        print("The runs' configs are identical (only seeds of randomness outside the config differ).")
    if len(keys) > len(shown_keys):
        print(
            f"{len(shown_keys)} of the {len(keys)} config keys that differ are shown (GROUP_BY keys, then "
            f"command-line overrides, then the most varied, as many as fit); all are in {out_dir}/runs.md"
        )
    if selection:
        # Which runs this folder compares: its name is only a hash of the patterns.
        (out_dir / "selection.txt").write_text(
            "".join(f"{t}\n" for t in targets) + "".join(f"  {r.path}\n" for r in runs)
        )
        print(f"comparing a selection of runs ({', '.join(map(str, targets))}): written to its own folder")
    (out_dir / "runs.md").write_text(
        f"# {title}\n\n" + to_markdown(df, shown_columns(df, runs, all_metrics=True))
    )
    df.to_csv(out_dir / "runs.csv")
    sources: dict[str, str | None] = {}
    plots = plot_curves(runs, out_dir, sources)
    if agg is not None:
        print_groups(agg, all_metrics)
        from litvision.tracking.compare_plots import plot_groups

        write_groups(agg, out_dir, title)
        plots += plot_groups(agg, out_dir)
    for r, lost in nan_runs:
        print(
            f"note: {r.path}: {', '.join(lost)} {'is' if len(lost) == 1 else 'are'} "
            f"{' / '.join(sorted(set(lost.values())))}: a diverged training; "
            + (
                f"left out of the mean of group [{_group_of(agg, r)}]."
                if agg is not None
                else "blank in the table."
            )
        )
    print(curves_line(sources))
    bad = [r for r in runs if not r.ok]
    for r in bad:
        print(f"note: {r.path}: {r.problem}")
    if bad:
        print(f"{len(bad)} of {len(runs)} run(s) have no results; the others are compared above.")
    print(
        f"wrote {out_dir}/runs.md, runs.csv"
        + (", groups.md, groups.csv" if agg is not None else "")
        + (", " + ", ".join(p.name for p in plots) if plots else " (no logger left learning curves)")
    )
    return {
        "frame": df,
        "runs": runs,
        "keys": keys,
        "shown_keys": shown_keys,
        "out_dir": out_dir,
        "plots": plots,
        "groups": agg,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m litvision.compare", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="*", help="run, experiment or sweep folders (globs allowed)")
    parser.add_argument("--exp", help="compare every run of this experiment (runs/<exp>)")
    parser.add_argument("--runs", help="a folder or a glob of run folders (quote it)")
    parser.add_argument("--runs-dir", help="where runs live (default: <project>/runs)")
    parser.add_argument("--out", type=Path, help="output folder (default: <folder>/compare)")
    parser.add_argument("--all-metrics", action="store_true", help="print every metric, not only main + loss")
    parser.add_argument(
        "--group-by",
        help="config keys (comma-separated) that make the groups; default: every differing key "
        "except seed and data.fold",
    )
    args = parser.parse_args(argv)
    from litvision.errors import guarded

    guarded(_compare_from_args, args)


def _compare_from_args(args: argparse.Namespace) -> None:
    targets: list[str | Path] = list(args.paths)
    if args.runs:
        targets.append(args.runs)
    if not targets:
        if not args.exp:
            raise UserError("Say which runs to compare: EXP=<experiment>, RUNS=<folder or glob>, or paths.")
        from litvision.config import project_root

        runs_dir = Path(args.runs_dir) if args.runs_dir else project_root() / "runs"
        targets = [runs_dir / args.exp]
    from litvision.aggregate import parse_group_by

    compare(targets, args.out, args.all_metrics, parse_group_by(args.group_by))


def print_sweep_comparison(folder: Path) -> None:
    """A sweep's answer, printed when its jobs are done: this comparison of its runs, then the
    sweep folder as the last line (`python -m litvision.train --multirun`, `litvision sweep`)."""
    print(f"\nSweep finished: comparing its runs ({folder}/compare/)", flush=True)
    compare([folder])
    print(f"sweep folder: {folder}", flush=True)


if __name__ == "__main__":
    main()
