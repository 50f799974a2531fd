"""An Optuna study that lives in its sweep folder (`optuna_study.json`) and survives the sweep's process.

Why not Optuna's SQLite storage: hydra-optuna-sweeper pins optuna<3, and optuna 2.x's RDB storage
fails on SQLAlchemy 2 (its alembic stamp is never committed: `assert version is not None` in
`get_current_version`), which alembic>=1.14 and MLflow require. So the study is kept as a journal of
its trials, written atomically on every ask and tell, and rebuilt in memory with Optuna's own API
(`create_trial` + `add_trial`, `enqueue_trial` for a trial that was running when the sweep died):

    from litvision.lifecycle.optuna_study import load_study
    study = load_study("runs/digits_cnn/multirun/sweep-<id>")     # an optuna.Study
    [(t.number, t.state, t.value, t.params) for t in study.trials]

Trial numbers are kept: trial n of the study is job folder <sweep>/<n>/ in every run of the sweep.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STUDY_FILE = "optuna_study.json"


class StudyJournal:
    """The trials of one study: number, state, values, params and their distributions."""

    def __init__(self, folder: str | Path, study_name: str | None, directions: list[str]) -> None:
        self.path = Path(folder) / STUDY_FILE
        self.study_name = study_name
        self.directions = directions
        self.trials: dict[int, dict[str, Any]] = {}
        if self.path.is_file():
            data = json.loads(self.path.read_text())
            if data.get("directions") != directions:
                from litvision.errors import UserError

                raise UserError(
                    f"{self.path} is a study with directions {data.get('directions')}, not {directions}; "
                    "a resumed search keeps its direction (start a new sweep for another one)."
                )
            self.trials = {int(t["number"]): t for t in data.get("trials", [])}

    def save(self) -> None:
        from litvision.utils.run import atomic_write

        data = {
            "study_name": self.study_name,
            "directions": self.directions,
            "trials": [self.trials[n] for n in sorted(self.trials)],
        }
        atomic_write(self.path, json.dumps(data, indent=1))

    def started(self, trial: Any) -> None:
        """A trial was asked and its parameters suggested: it runs from now on."""
        from optuna.distributions import distribution_to_json

        self.trials[trial.number] = {
            "number": trial.number,
            "state": "RUNNING",
            "values": None,
            "params": dict(trial.params),
            "distributions": {k: distribution_to_json(d) for k, d in trial.distributions.items()},
            "user_attrs": dict(trial.user_attrs),
        }
        self.save()

    def finished(self, number: int, state: Any, values: list[float] | None) -> None:
        self.trials[number].update(state=state.name, values=values)
        self.save()

    def restore(self, study: Any) -> list[Any]:
        """Put the journal's trials into a new (empty) study, numbers kept. Finished trials are added
        as they ended; a trial still RUNNING (its sweep was killed) is asked again with its own
        parameters, and returned: the caller runs it again, in its own folder."""
        import warnings

        import optuna
        from optuna.distributions import json_to_distribution
        from optuna.exceptions import ExperimentalWarning
        from optuna.trial import TrialState

        # create_trial/add_trial are "experimental" in optuna 2.x, stable since 3.0: the same API.
        warnings.filterwarnings("ignore", category=ExperimentalWarning)
        stale = []
        for number in sorted(self.trials):
            t = self.trials[number]
            if len(study.trials) != number:
                raise RuntimeError(f"{self.path}: trial numbers are not contiguous at {number}")
            state = TrialState[t["state"]]
            if state.is_finished():
                dists = {k: json_to_distribution(v) for k, v in t["distributions"].items()}
                study.add_trial(
                    optuna.trial.create_trial(
                        state=state,
                        values=t["values"] if state == TrialState.COMPLETE else None,
                        params=t["params"],
                        distributions=dists,
                        user_attrs=t.get("user_attrs") or {},
                    )
                )
            else:
                study.enqueue_trial(t["params"])
                stale.append(study.ask())
        return stale

    @property
    def finished_count(self) -> int:
        return sum(1 for t in self.trials.values() if t["state"] != "RUNNING")


def load_study(folder: str | Path, sampler: Any = None) -> Any:
    """The study of a sweep folder as an `optuna.Study` (in memory), from its journal."""
    import optuna

    path = Path(folder) / STUDY_FILE
    if not path.is_file():
        from litvision.errors import UserError

        raise UserError(f"{folder} has no {STUDY_FILE}: it is not an Optuna sweep folder.")
    data = json.loads(path.read_text())
    study = optuna.create_study(
        study_name=data.get("study_name"), sampler=sampler, directions=data["directions"]
    )
    StudyJournal(folder, data.get("study_name"), data["directions"]).restore(study)
    return study
