"""hydra-optuna-sweeper's OptunaSweeper, made resumable (litvision.lifecycle.sweeps, optuna_study).

What differs from the plugin's own `sweep` (hydra_plugins/hydra_optuna_sweeper/_impl.py, 1.3.0):
- the study is rebuilt from the sweep folder's journal (optuna_study.json) and written on every ask
  and tell, so a killed or finished search continues where it stopped;
- trial n runs in job folder <sweep>/<n>/ (the plugin numbers jobs from 0 in every process, which
  would put a resumed search's new trials into the folders of finished ones);
- `n_trials` is the total number of trials of the study: a rerun asks only for the missing ones,
  and first runs again each trial that was running when the sweep died, with its own parameters
  (its job resumes from its last.ckpt);
- a seeded sampler restarted on a study of n trials is re-seeded with seed + n: with its first seed
  it would draw trial 0's parameters again.
"""

from __future__ import annotations

import functools
import logging
import math
from pathlib import Path
from typing import Any

from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


class ResumableOptunaSweeper(OptunaSweeper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plain = self.sweeper
        self.sweeper = _ResumableImpl.__new__(_ResumableImpl)
        self.sweeper.__dict__.update(plain.__dict__)


def _reseed(sampler: Any, seed: int | None, n: int) -> None:
    if seed is None or n == 0:
        return
    import numpy as np

    # TPE and random samplers keep their generator in `_rng` (TPE's random start-up in `_random_sampler`).
    for s in (sampler, getattr(sampler, "_random_sampler", None)):
        if s is not None and hasattr(s, "_rng"):
            s._rng = np.random.RandomState((int(seed) + n) % 2**32)


class _ResumableImpl(OptunaSweeperImpl):
    def sweep(self, arguments: list[str]) -> None:
        import optuna

        from litvision.lifecycle.optuna_study import StudyJournal

        self._process_searchspace_config()
        params_conf = self._parse_sweeper_params_config()
        params_conf.extend(arguments)
        space, fixed = create_params_from_overrides(params_conf)
        if self.search_space_distributions:
            space = {**self.search_space_distributions, **space}
        if isinstance(self.sampler, functools.partial) and self.sampler.func == optuna.samplers.GridSampler:
            # As the plugin does: the grid is the search space; n_trials at most its size.
            grid = {name: self._to_grid_sampler_choices(d) for name, d in space.items()}
            self.sampler = self.sampler(grid)
            self.n_trials = min(self.n_trials, math.prod(len(v) for v in grid.values()))
        for name in fixed:
            space.pop(name, None)
        directions = self._get_directions()
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)

        journal = StudyJournal(sweep_dir, self.study_name, directions)
        study = optuna.create_study(study_name=self.study_name, sampler=self.sampler, directions=directions)
        stale = journal.restore(study)
        seed = OmegaConf.select(self.config, "hydra.sweeper.sampler.seed")
        _reseed(self.sampler, seed, len(journal.trials))
        done = journal.finished_count
        log.info(
            f"Study {study.study_name} in {journal.path}: {done} finished trial(s), {len(stale)} to run "
            f"again, {max(0, self.n_trials - done - len(stale))} new of n_trials={self.n_trials} in all"
        )

        for trial in stale:  # killed mid-run: the same parameters, in the same folder
            self._launch([trial], space, fixed, study, journal, directions)
        to_go = self.n_trials - done - len(stale)
        while to_go > 0:
            batch = min(to_go, self.n_jobs)
            self._launch([study.ask() for _ in range(batch)], space, fixed, study, journal, directions)
            to_go -= batch

        finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not finished:
            return
        if len(directions) < 2:
            best = study.best_trial
            results: dict[str, Any] = {"name": "optuna", "best_params": best.params, "best_value": best.value}
            log.info(f"Best parameters: {best.params}")
            log.info(f"Best value: {best.value}")
        else:
            results = {
                "name": "optuna",
                "solutions": [{"params": t.params, "values": t.values} for t in study.best_trials],
            }
        OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")

    def _launch(self, trials, space, fixed, study, journal, directions) -> None:  # noqa: ANN001
        import optuna

        overrides = self._configure_trials(trials, space, fixed)
        for trial in trials:
            journal.started(trial)
        # Trials asked together have consecutive numbers: trial n runs in job folder n.
        returns = self.launcher.launch(overrides, initial_job_idx=trials[0].number)
        failures = []
        for trial, ret in zip(trials, returns):
            values = None
            state = optuna.trial.TrialState.COMPLETE
            try:
                raw = ret.return_value
                values = [float(raw)] if len(directions) == 1 else [float(v) for v in raw]
                study.tell(trial.number, values)
            except Exception as e:
                state = optuna.trial.TrialState.FAIL
                values = None
                study.tell(trial.number, state=state)
                log.warning(f"Failed trial {trial.number}: {e}")
                failures.append(e)
            journal.finished(trial.number, state, values)
        if len(failures) / len(returns) > self.max_failure_rate:
            log.error(
                f"Failed {len(failures)} of {len(returns)} with max_failure_rate={self.max_failure_rate}."
            )
            for ret in returns:
                ret.return_value  # noqa: B018  the JobReturn raises with the job's own traceback
            raise failures[0]
