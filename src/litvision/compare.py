"""Compare runs without any server: one row per run, the config keys that differ, the metrics.

    make compare                                   # every run of EXP (default digits_cnn): runs/digits_cnn/
    make compare EXP=digits_cnn
    make compare RUNS=runs/digits_cnn/multirun/2026-11-21_21-30-00-000000     # one sweep
    make compare RUNS='runs/*/2026-11-2*'                                       # a glob of run folders
    python -m litvision.compare runs/digits_cnn --out /tmp/cmp --all-metrics

Reads each run folder's `summary.json`, its configs (`.hydra/config.yaml` as composed, with
interpolations kept, so `data.seed: ${seed}` does not count as a second difference; and the
resolved `config.yaml` for the values shown) and `csv/metrics.csv`. Prints a rich table and
writes, into `<folder>/compare/`: `runs.md` (the table in markdown, every metric), `runs.csv`,
`loss.png` and one PNG per main metric (learning curves of every run, overlaid). Runs that differ
only in seed or data.fold are aggregated per group (n, mean, std, 95% CI, Welch t-test between the
best two; `--group-by` / GROUP_BY= chooses the keys): `groups.md`, `groups.csv`, `groups_*.png`
(see litvision.aggregate).

A run without `summary.json` (crashed, killed, or still running) is listed as such; the other
runs are still compared. Does not import torch: it starts in about a second.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from litvision.errors import UserError

COMPARE_DIR = "compare"
NO_SUMMARY = "no summary.json: crashed, killed or still running"
# Keys that say where a run lives rather than how it was run.
_PATH_KEYS = re.compile(
    r"(^|\.)(output_dir|save_dir|dirpath|default_root_dir|run_dir|root_dir|data_dir|runs_dir)$"
)


@dataclass
class Run:
    path: Path
    label: str = ""
    composed: dict[str, Any] = field(default_factory=dict)  # .hydra/config.yaml, flattened
    resolved: dict[str, Any] = field(default_factory=dict)  # config.yaml, flattened
    summary: dict[str, Any] | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.summary is not None

    @property
    def monitor(self) -> str:
        if self.summary and self.summary.get("monitor"):
            return str(self.summary["monitor"])
        return str(self.resolved.get("monitor") or self.composed.get("monitor") or "val/acc")

    @property
    def epochs(self) -> int | None:
        """Epochs the run completed (`epochs_completed`; older summaries say `epochs`)."""
        s = self.summary or {}
        value = s.get("epochs_completed")
        try:
            return int(value) if value is not None else None
        except (TypeError, ValueError):  # a hand-edited summary: show the run, not a traceback
            return None

    @property
    def task_name(self) -> str:
        return str(self.resolved.get("task_name") or self.composed.get("task_name") or "train")


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values."""
    if not isinstance(d, dict):
        return {prefix: d} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError, yaml.YAMLError):  # ValueError: binary bytes (UnicodeDecodeError)
        return {}


def is_run_dir(path: Path) -> bool:
    return (path / ".hydra" / "config.yaml").is_file() or (path / "config.yaml").is_file()


def find_run_dirs(root: Path) -> list[Path]:
    """Run folders at or under `root` (a run, an experiment's folder or a sweep folder)."""
    if is_run_dir(root):
        return [root]
    found = {p.parent.parent for p in root.rglob(".hydra/config.yaml")}
    found |= {
        p.parent for p in root.rglob("config.yaml") if is_run_dir(p.parent) and p.parent.name != ".hydra"
    }
    # The W&B folder and a local MLflow store keep copies of files; only litvision run folders count.
    return sorted(p for p in found if not {"wandb", "mlflow"} & set(p.relative_to(root).parts))


def _natural(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def load_run(path: Path, root: Path | None = None) -> Run:
    run = Run(path=path)
    try:
        run.label = str(path.relative_to(root)) if root and path != root else path.name
    except ValueError:
        run.label = str(path)
    run.label = run.label if run.label not in ("", ".") else path.name
    run.composed = flatten(_read_yaml(path / ".hydra" / "config.yaml"))
    run.resolved = flatten(_read_yaml(path / "config.yaml"))
    summary = path / "summary.json"
    if summary.is_file():
        run.summary, run.problem = read_summary_checked(summary)
    else:
        run.problem = NO_SUMMARY
    return run


def read_summary_checked(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(summary, None), or (None, why it cannot be used): unreadable bytes, not JSON, or the wrong shape.

    One bad file (a disk error, a hand edit, a half-copied folder) must not stop the comparison
    of every other run, so nothing here raises.
    """
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as e:
        return None, f"unreadable summary.json ({e.strerror or e})"
    except UnicodeDecodeError:
        return None, "unreadable summary.json (not UTF-8 text: binary or corrupted)"
    except json.JSONDecodeError as e:
        return None, f"unreadable summary.json (not JSON: {e.msg} at line {e.lineno})"
    if not isinstance(data, dict):
        return None, f"summary.json has the wrong shape (a JSON {type(data).__name__}, not an object)"
    if "best_val" not in data and "test" not in data:
        return None, "summary.json has the wrong shape (no best_val or test metrics)"
    for key in ("best_val", "test"):
        metrics = data.get(key)
        if metrics is None:
            continue
        if not isinstance(metrics, dict):
            return (
                None,
                f"summary.json has the wrong shape ({key} is a {type(metrics).__name__}, not an object)",
            )
        bad = [k for k, v in metrics.items() if v is not None and not isinstance(v, (int, float))]
        if bad:
            return None, f"summary.json has the wrong shape ({key}.{bad[0]} is not a number)"
    return data, None


def load_runs(targets: list[str | Path]) -> list[Run]:
    """Every run folder found under the targets (folders or globs), labelled relative to their common root."""
    dirs: list[Path] = []
    for t in targets:
        matches = sorted(glob.glob(str(t))) or []
        if not matches:
            raise UserError(
                f"No such folder: {t}. Pass a run folder, an experiment's folder (runs/<experiment>) "
                "or a sweep folder (runs/<experiment>/multirun/<stamp>)."
            )
        for m in matches:
            if Path(m).is_dir():
                dirs += find_run_dirs(Path(m).resolve())
    dirs = sorted(set(dirs), key=lambda p: _natural(str(p)))
    if not dirs:
        shown = ", ".join(str(t) for t in targets)
        raise UserError(
            f"No runs found under {shown}: a run folder holds config.yaml or .hydra/config.yaml. "
            "Train one first (`make train EXP=<name>`), or point RUNS= at a sweep folder."
        )
    root = _common_root(dirs)
    runs = [load_run(d, root) for d in dirs]
    return [r for r in runs if r.task_name == "train"] or runs


def _common_root(dirs: list[Path]) -> Path:
    if len(dirs) == 1:
        return dirs[0].parent
    parts = list(zip(*(d.parts for d in dirs), strict=False))
    common = [p[0] for p in parts if all(x == p[0] for x in p)]
    return Path(*common) if common else Path("/")


def differing_keys(runs: list[Run]) -> list[str]:
    """Config keys whose value is not the same in every run (as composed, before interpolation)."""
    if len(runs) < 2:
        return []
    use_composed = all(r.composed for r in runs)
    configs = [r.composed if use_composed else r.resolved for r in runs]
    keys = sorted(set().union(*configs))
    out = []
    for k in keys:
        if k.startswith("hydra.") or _PATH_KEYS.search(k):
            continue
        values = {json.dumps(c.get(k, "<missing>"), sort_keys=True, default=str) for c in configs}
        if len(values) > 1:
            out.append(k)
    return out


def _value(run: Run, key: str) -> Any:
    if key in run.resolved:
        return run.resolved[key]
    return run.composed.get(key, None)


def compare_frame(runs: list[Run]) -> Any:
    """The comparison as a pandas DataFrame: one row per run (index: run label)."""
    import pandas as pd

    keys = differing_keys(runs)
    rows = []
    for r in runs:
        row: dict[str, Any] = {"run": r.label}
        for k in keys:
            row[k] = _value(r, k)
        row["status"] = "ok" if r.ok else r.problem
        s = r.summary or {}
        row.update({k: v for k, v in (s.get("best_val") or {}).items()})
        row.update({k: v for k, v in (s.get("test") or {}).items()})
        row["epochs"] = r.epochs
        row["wall_time_s"] = s.get("wall_time_s")
        row["path"] = str(r.path)
        rows.append(row)
    return pd.DataFrame(rows).set_index("run")


# -- learning curves ------------------------------------------------------------------------------
def read_curves(run: Run) -> Any | None:
    """`csv/metrics.csv` of a run as a DataFrame of the fit (the re-validation and test after fit dropped)."""
    import pandas as pd

    path = run.path / "csv" / "metrics.csv"
    if not path.is_file():
        return None
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return None
    if "epoch" in df and run.epochs is not None:
        # After fit, the best checkpoint is validated and tested again at epoch == epochs completed.
        df = df[~(df["epoch"] >= run.epochs)]
    return df


def _curve(df: Any, column: str) -> tuple[list[float], list[float]]:
    if column not in df:
        return [], []
    part = df[["step", column]].dropna()
    part = part.groupby("step", as_index=False).last()
    return part["step"].tolist(), part[column].tolist()


def _legend(run: Run, keys: list[str]) -> str:
    """`3 (lr=0.01, seed=2)`: the run and what sets it apart."""
    parts = [f"{k.rsplit('.', 1)[-1]}={_value(run, k)}" for k in keys[:3]]
    return f"{run.label} ({', '.join(parts)})" if parts else run.label


def plot_curves(runs: list[Run], out_dir: Path) -> list[Path]:
    """loss.png (train solid, val dashed) and <metric>.png per main metric, every run overlaid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [(r, read_curves(r)) for r in runs]
    curves = [(r, df) for r, df in curves if df is not None and "step" in df]
    if not curves:
        return []
    keys = differing_keys(runs)
    names = {r.path: _legend(r, keys) for r in runs}
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    fig, ax = plt.subplots(figsize=(8, 5))
    for i, (r, df) in enumerate(curves):
        c = colours[i % len(colours)]
        ax.plot(*_curve(df, "train/loss"), color=c, alpha=0.8, label=f"{names[r.path]} train")
        ax.plot(
            *_curve(df, "val/loss"),
            color=c,
            linestyle="--",
            marker="o",
            markersize=3,
            label=f"{names[r.path]} val",
        )
    ax.set(xlabel="step", ylabel="loss", title="loss (train solid, val dashed)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    written.append(out_dir / "loss.png")
    fig.savefig(written[-1], dpi=100)
    plt.close(fig)

    for metric in sorted({r.monitor for r, _ in curves}):
        fig, ax = plt.subplots(figsize=(8, 5))
        for i, (r, df) in enumerate(curves):
            if r.monitor == metric:
                ax.plot(
                    *_curve(df, metric),
                    color=colours[i % len(colours)],
                    marker="o",
                    markersize=3,
                    label=r.label,
                )
        ax.set(xlabel="step", ylabel=metric, title=metric)
        ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(out_dir / (metric.replace("/", "_") + ".png"))
        fig.savefig(written[-1], dpi=100)
        plt.close(fig)
    return written


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


def shown_columns(df: Any, runs: list[Run], all_metrics: bool = False) -> list[str]:
    """Differing keys, status, the main metric and loss (val and test; all metrics if asked), epochs, time."""
    keys = differing_keys(runs)
    metrics = [c for c in df.columns if c.startswith(("val/", "test/"))]
    if not all_metrics:
        names = {m.split("/", 1)[1] for m in {r.monitor for r in runs}} | {"loss"}
        metrics = [c for c in metrics if c.split("/", 1)[1] in names]
    metrics.sort(key=lambda c: (not c.startswith("val/"), c))
    return [*keys, "status", *metrics, "epochs", "wall_time_s"]


def to_markdown(df: Any, columns: list[str]) -> str:
    head = ["run", *columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, row in df.iterrows():
        cells = [str(label), *(_fmt(row.get(c), c) for c in columns)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def print_table(df: Any, runs: list[Run], columns: list[str], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    keys = set(differing_keys(runs))
    table = Table(title=title, title_justify="left")
    table.add_column("run", style="bold", no_wrap=True)
    for c in columns:
        table.add_column(
            c, justify="left" if c in keys or c == "status" else "right", style="cyan" if c in keys else None
        )
    for label, row in df.iterrows():
        cells = [_fmt(row.get(c), c) for c in columns]
        style = None if row.get("status") == "ok" else "yellow"
        table.add_row(str(label), *cells, style=style)
    Console(width=max(160, Console().width)).print(table)


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
    if out_dir is None:
        first = Path(sorted(glob.glob(str(targets[0])))[0]).resolve()
        base = first if len(targets) == 1 and not is_run_dir(first) else _common_root([r.path for r in runs])
        out_dir = base / COMPARE_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = shown_columns(df, runs, all_metrics)
    keys = differing_keys(runs)
    title = f"{len(runs)} run(s) under {_common_root([r.path for r in runs])}"
    print_table(df, runs, columns, title)
    if not keys and len(runs) > 1:
        print("The runs' configs are identical (only seeds of randomness outside the config differ).")
    (out_dir / "runs.md").write_text(
        f"# {title}\n\n" + to_markdown(df, shown_columns(df, runs, all_metrics=True))
    )
    df.to_csv(out_dir / "runs.csv")
    plots = plot_curves(runs, out_dir)
    if agg is not None:
        print_groups(agg, all_metrics)
        plots += [p for p in write_groups(agg, out_dir, title) if p.suffix == ".png"]
    bad = [r for r in runs if not r.ok]
    for r in bad:
        print(f"note: {r.path}: {r.problem}")
    if bad:
        print(f"{len(bad)} of {len(runs)} run(s) have no results; the others are compared above.")
    print(
        f"wrote {out_dir}/runs.md, runs.csv"
        + (", groups.md, groups.csv" if agg is not None else "")
        + (", " + ", ".join(p.name for p in plots) if plots else " (no csv/metrics.csv: no learning curves)")
    )
    return {"frame": df, "runs": runs, "keys": keys, "out_dir": out_dir, "plots": plots, "groups": agg}


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
    try:
        targets: list[str | Path] = list(args.paths)
        if args.runs:
            targets.append(args.runs)
        if not targets:
            if not args.exp:
                raise UserError(
                    "Say which runs to compare: EXP=<experiment>, RUNS=<folder or glob>, or paths."
                )
            from litvision.config import project_root

            runs_dir = Path(args.runs_dir) if args.runs_dir else project_root() / "runs"
            targets = [runs_dir / args.exp]
        from litvision.aggregate import parse_group_by

        compare(targets, args.out, args.all_metrics, parse_group_by(args.group_by))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
