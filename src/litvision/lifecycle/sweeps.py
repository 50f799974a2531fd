"""Resumable sweeps: one sweep folder per sweep command, found again by the same command.

    litvision sweep experiment=digits_cnn model.optimizer.lr=1e-3,1e-2 seed=1,2   # run it; again: resume it
    litvision sweep resume=runs/digits_cnn/multirun/sweep-<id>                      # the same, by folder
    litvision sweep resume=<sweep folder> hydra.sweeper.n_trials=40                 # Optuna: 40 trials in all

The rule: a sweep's folder is `<paths.runs_dir>/<experiment>/multirun/sweep-<id>`, where <id> is a hash of
the sweep's overrides in the order given, less the ones that say where or how long a sweep runs
(SWEEP_MAY_CHANGE: launcher, n_trials, devices, workers, loggers, paths). Running the same command
again therefore lands in the same folder: a job whose run finished is skipped (its folder is not
written), an interrupted job continues from its last.ckpt with its own config, and a job never
started runs. An Optuna search continues its study (lifecycle/optuna_study.py): trial numbers go
on, and `hydra.sweeper.n_trials` is the total number of trials of the study, not the number to add.
`hydra.sweep.dir=<folder>` names the folder explicitly (the same rule then holds for that folder);
a changed override (another lr, more epochs) is another sweep in another folder.

The folder's `sweep.yaml` records the overrides, so `resume=<folder>` re-runs a sweep without its
command line. Sweeps made before this rule (timestamped folders) resume from their `multirun.yaml`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from litvision.errors import UserError
from litvision.lifecycle.run_folder import RunLock

SWEEP_FILE = "sweep.yaml"
HYDRA_MULTIRUN_FILE = "multirun.yaml"
LOCK_FILE = ".sweep.lock"

# Overrides that say where, on what or how long a sweep runs, not what its jobs train: they may
# differ between the runs of one sweep and are left out of its identity.
SWEEP_MAY_CHANGE: tuple[str, ...] = (
    "hydra.sweep.dir",
    "hydra.sweeper.n_trials",
    "hydra.sweeper.n_jobs",
    "hydra/launcher",
    "hydra.launcher",
    "hydra.verbose",
    "hydra.job_logging",
    "hydra.output_subdir",
    "paths",
    "data.num_workers",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.accelerator",
    "trainer.strategy",
    "trainer.enable_progress_bar",
    "logger",
    "callbacks.rich_progress_bar",
    "callbacks.model_summary",
    "verbose",
)


def override_key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def may_change(override: str) -> bool:
    key = override_key(override)
    return any(key == k or key.startswith((k + ".", k + "/")) for k in SWEEP_MAY_CHANGE)


def sweep_identity(args: list[str]) -> list[str]:
    """The overrides that decide what a sweep trains, in the order given (the order numbers the jobs)."""
    return [a for a in args if "=" in a and not a.startswith("-") and not may_change(a)]


def sweep_id(args: list[str]) -> str:
    digest = hashlib.sha1(json.dumps(sweep_identity(args)).encode()).hexdigest()
    return f"sweep-{digest[:10]}"


def sweep_folder(args: list[str], runs_dir: str | Path, name: str) -> Path:
    """Where the sweep of these overrides lives: `hydra.sweep.dir` if given, else the rule above."""
    from litvision.lifecycle.runner import value_of

    explicit = value_of(args, "hydra.sweep.dir")
    if explicit:
        if "${" in explicit:
            raise UserError(
                f"hydra.sweep.dir={explicit}: give a plain folder (a sweep is found again by its folder), "
                "or leave it unset for runs/<experiment>/multirun/sweep-<id>."
            )
        return Path(explicit).expanduser().resolve()
    return (Path(runs_dir) / name / "multirun" / sweep_id(args)).resolve()


def saved_overrides(folder: Path) -> list[str]:
    """The overrides a sweep folder was started with (sweep.yaml, or Hydra's multirun.yaml)."""
    import yaml

    if (folder / SWEEP_FILE).is_file():
        data = yaml.safe_load((folder / SWEEP_FILE).read_text()) or {}
        return [str(o) for o in data.get("overrides") or []]
    data = yaml.safe_load((folder / HYDRA_MULTIRUN_FILE).read_text()) or {}
    return [str(o) for o in ((data.get("hydra") or {}).get("overrides") or {}).get("task") or []]


def resume_args(resume: str, args: list[str]) -> list[str]:
    """`resume=<sweep folder> [changes]` -> that sweep's own overrides, the changes and its folder.

    Only SWEEP_MAY_CHANGE keys may be added (more trials, another launcher); anything else would make
    it another sweep, and is refused in one line before anything is written."""
    folder = Path(resume).expanduser()
    if not folder.is_dir():
        raise UserError(
            f"resume={resume}: no such folder. Pass a sweep folder, runs/<experiment>/multirun/<sweep>."
        )
    folder = folder.resolve()
    if not (folder / SWEEP_FILE).is_file() and not (folder / HYDRA_MULTIRUN_FILE).is_file():
        hint = (
            f" It is a run folder: continue it with `litvision fit resume={resume}`."
            if (folder / "config.yaml").is_file()
            else " Pass runs/<experiment>/multirun/<sweep>."
        )
        raise UserError(
            f"resume={resume} is not a sweep folder (it has no {SWEEP_FILE} or {HYDRA_MULTIRUN_FILE}).{hint}"
        )
    saved = saved_overrides(folder)
    changes = [a for a in args if override_key(a) != "resume" and a not in saved]
    refused = [a for a in changes if "=" in a and not a.startswith("-") and not may_change(a)]
    if refused:
        raise UserError(
            f"resume={resume} re-runs that sweep as it was; {refused[0]} would change what its jobs "
            f"train. Drop it, or start a new sweep without resume= (only {', '.join(SWEEP_MAY_CHANGE[1:5])}, "
            "devices, workers, loggers and paths may change)."
        )
    changed_keys = {override_key(a) for a in changes}
    kept = [o for o in saved if override_key(o) not in changed_keys]
    kept = [o for o in kept if override_key(o) != "hydra.sweep.dir"]
    return [*kept, *changes, f"hydra.sweep.dir={folder}"]


def record_start(folder: Path, args: list[str]) -> None:
    """sweep.yaml: the sweep's overrides (the latest command's), its identity and each start."""
    import yaml

    from litvision.utils.run import atomic_write

    path = folder / SWEEP_FILE
    data: dict[str, Any] = yaml.safe_load(path.read_text()) if path.is_file() else {}
    data = data or {}
    overrides = [a for a in args if override_key(a) != "hydra.sweep.dir" and not a.startswith("-")]
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    data.setdefault("created_at", now)
    data["identity"] = sweep_identity(overrides)
    data["overrides"] = overrides
    data.setdefault("starts", []).append(now)
    atomic_write(path, yaml.safe_dump(data, sort_keys=False))


class SweepLock(RunLock):
    """One process runs a sweep folder at a time (the run lock's flock, on the sweep folder)."""

    file_name = LOCK_FILE

    def busy_message(self, holder: str) -> str:
        return (
            f"The sweep {self.path.parent} is being run by {holder}; wait for it to end (or stop it) "
            "before running it again."
        )


# -- progress and summary ---------------------------------------------------------------------------
def job_count(args: list[str]) -> int | None:
    """How many jobs a grid sweep of these overrides runs (the product of its lists and ranges);
    None for a search (Optuna: `hydra.sweeper.n_trials` when given) or what cannot be counted."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    from litvision.lifecycle.runner import value_of

    searched = any(override_key(a) in ("hparams_search", "hydra/sweeper") for a in args)
    if searched:
        trials = value_of(args, "hydra.sweeper.n_trials")
        return int(trials) if trials and trials.isdigit() else None
    try:
        parsed = OverridesParser.create().parse_overrides(
            [
                a
                for a in args
                if "=" in a and not a.startswith("-") and not override_key(a).startswith("hydra")
            ]
        )
    except HydraException:
        return None
    total = 1
    for o in parsed:
        if o.is_sweep_override():
            if not o.is_discrete_sweep():
                return None
            total *= len(list(o.sweep_iterator()))
    return total


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class SweepProgress:
    """`job 3 of 4: 2 done in 1 min 04 s, about 32 s left`, printed as each job starts.

    The estimate is the mean time of the jobs this process trained (a finished job found again is
    skipped in no time and not counted) times the jobs left."""

    def __init__(self, total: int | None) -> None:
        import time

        self.total = total
        self.started = time.monotonic()
        self.trained: list[float] = []
        self.done = 0
        self._job_started: float | None = None

    def begin(self, num: int) -> str:
        import time

        self._job_started = time.monotonic()
        of = f" of {self.total}" if self.total else ""
        line = f"job {num + 1}{of}"
        if self.done:
            line += f": {self.done} done in {_duration(self._job_started - self.started)}"
            if self.trained and self.total:
                left = max(0, self.total - self.done) * sum(self.trained) / len(self.trained)
                line += f", about {_duration(left)} left"
        return line

    def end(self, trained: bool) -> None:
        import time

        self.done += 1
        if trained and self._job_started is not None:
            self.trained.append(time.monotonic() - self._job_started)
