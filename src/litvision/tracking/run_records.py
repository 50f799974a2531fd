"""Run folders as records for comparisons: each run's configs (composed and resolved), its
summary.json (checked: a bad one is a note, never a crash) and its learning curves.

Read by `litvision.compare` (tables, curves) and `litvision.aggregate` (seeds and folds grouped).
"""

from __future__ import annotations

import glob
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from litvision.errors import UserError
from litvision.utils.run import flatten

NO_SUMMARY = "no summary.json: crashed, killed or still running"
# Keys that say where a run lives rather than how it was run.
_PATH_KEYS = re.compile(
    r"(^|\.)(output_dir|save_dir|dirpath|default_root_dir|run_dir|root_dir|data_dir|runs_dir)$"
)

# Keys that say where or how a run logs, reports or resumes, not what it trains: runs that differ
# only in these are one experiment (`make compare` does not group by them). Callbacks that change
# training (early stopping, unfreezing, EMA...) are not listed, so they still make groups.
_NOT_TRAINING = re.compile(
    r"^(logger|paths|hydra)(\.|$)"
    r"|^(resume|verbose|tags|description|task_name|test|compile)$"
    r"|^callbacks\.(rich_progress_bar|model_summary|lr_monitor|sample_grid|preemption|model_checkpoint"
    r"|history|epoch_line)(\.|$)"
    r"|^trainer\.(enable_progress_bar|enable_model_summary|log_every_n_steps|default_root_dir)$"
    r"|^data\.(num_workers|pin_memory|persistent_workers|prefetch_factor)$"
)


def changes_training(key: str) -> bool:
    """False for keys that only say where or how a run logs (logger.*, paths.*, resume, progress bar...)."""
    return not _NOT_TRAINING.search(key)


@dataclass
class Run:
    path: Path
    label: str = ""
    composed: dict[str, Any] = field(default_factory=dict)  # .hydra/config.yaml, flattened
    resolved: dict[str, Any] = field(default_factory=dict)  # config.yaml, flattened
    summary: dict[str, Any] | None = None
    problem: str | None = None
    # The keys set on the run's command line (`.hydra/overrides.yaml`, sweep parameters included).
    overridden: set[str] = field(default_factory=set)

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
    run.overridden = overridden_keys(path / ".hydra" / "overrides.yaml")
    summary = path / "summary.json"
    if summary.is_file():
        run.summary, run.problem = read_summary_checked(summary)
    else:
        run.problem = NO_SUMMARY
    return run


def overridden_keys(path: Path) -> set[str]:
    """The config keys a Hydra overrides file sets (`+k=v`, `k=v`; `~k` deletions left out)."""
    try:
        with open(path) as f:
            items = yaml.safe_load(f)
    except (OSError, ValueError, yaml.YAMLError):
        return set()
    if not isinstance(items, list):
        return set()
    return {
        str(o).split("=", 1)[0].lstrip("+") for o in items if "=" in str(o) and not str(o).startswith("~")
    }


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
    df = pd.DataFrame(rows)
    for k in keys:
        # A key missing from one run would turn the column to floats: `data.fold` 0.0, 1.0, 2.0.
        df[k] = pd.Series([row[k] for row in rows], dtype=object)
    return df.set_index("run")


# -- learning curves ------------------------------------------------------------------------------
def read_curves(run: Run) -> Any | None:
    """The run's learning curves as a DataFrame of the fit (the re-validation and test after fit
    dropped), from whichever logger wrote them: CSV, TensorBoard, MLflow or W&B (tracking/curves)."""
    return read_curves_from(run)[0]


def read_curves_from(run: Run) -> tuple[Any | None, str | None]:
    """(read_curves(run), the logger they came from: csv, tensorboard, mlflow or wandb)."""
    from litvision.tracking.curves import read_any

    df, source = read_any(run.path)
    if df is None:
        return None, None
    if "epoch" in df and run.epochs is not None:
        # After fit, the best checkpoint is validated and tested again at epoch == epochs completed.
        df = df[~(df["epoch"] >= run.epochs)]
    return df, source


def _curve(df: Any, column: str) -> tuple[list[float], list[float]]:
    if column not in df:
        return [], []
    part = df[["step", column]].dropna()
    part = part.groupby("step", as_index=False).last()
    return part["step"].tolist(), part[column].tolist()
