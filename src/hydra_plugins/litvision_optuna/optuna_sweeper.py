"""litvision's Optuna sweeper for Hydra: Optuna 4+ directly, the study in the sweep folder.

    litvision sweep experiment=digits_cnn hparams_search=digits_cnn_optuna     # again: resumes it

Registered as `hydra/sweeper: optuna` (and `litvision_optuna`), with the keys hydra-optuna-sweeper
had (direction, study_name, storage, n_trials, n_jobs, max_failure_rate, params, sampler), plus a
`pruner`. What it does differently from that plugin (which pins optuna<3):
- the study lives in `<sweep folder>/optuna_journal.log` (Optuna's JournalStorage; `storage:
  sqlite:///...` or any Optuna storage URL also works) and is loaded again by the same command:
  `n_trials` is the total number of trials of the study, a rerun asks only for the missing ones;
- trial n runs in job folder `<sweep>/<n>/`; a trial that was running when the sweep died runs
  again with its own parameters in its own folder (its job resumes from its last.ckpt);
- a seeded sampler restarted on a study of n trials is seeded with seed + n (with its first seed it
  would draw trial 0's parameters again);
- each job reports its validation metric per epoch to its trial, and the pruner may stop it
  (litvision.lifecycle.optuna_study.pruning_callback, optuna-integration's Lightning callback).

Search spaces use Hydra's sweep syntax: `interval(a, b)`, `tag(log, interval(a, b))`, `choice(...)`,
`range(...)`; a plain value is fixed for every trial.
"""

# No `from __future__ import annotations`: Hydra execs plugin modules outside sys.modules, where
# dataclasses cannot resolve string annotations.
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

log = logging.getLogger(__name__)

TARGET = "hydra_plugins.litvision_optuna.optuna_sweeper.OptunaSweeper"


@dataclass
class OptunaSweeperConf:
    _target_: str = TARGET
    direction: Any = "minimize"
    study_name: Any = None
    #: None: a journal file in the sweep folder; else an Optuna storage URL (sqlite:///study.db).
    storage: Any = None
    n_trials: int = 20
    n_jobs: int = 1
    max_failure_rate: float = 0.0
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}])
    #: From the group hydra/sweeper/sampler (tpe, random), as with hydra-optuna-sweeper.
    sampler: Any = MISSING
    #: None: no pruning; e.g. {_target_: optuna.pruners.MedianPruner, n_warmup_steps: 2}.
    pruner: Any = None
    params: Any = None


_store = ConfigStore.instance()
for _name in ("optuna", "litvision_optuna"):
    _store.store(group="hydra/sweeper", name=_name, node=OptunaSweeperConf, provider="litvision")
_SAMPLERS = {
    "tpe": {
        "_target_": "optuna.samplers.TPESampler",
        "seed": None,
        "n_startup_trials": 10,
        "multivariate": False,
    },
    "random": {"_target_": "optuna.samplers.RandomSampler", "seed": None},
}
for _name, _node in _SAMPLERS.items():
    _store.store(group="hydra/sweeper/sampler", name=_name, node=_node, provider="litvision")


def distributions(params: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Hydra sweep overrides -> ({name: optuna distribution}, [fixed overrides])."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space: dict[str, Any] = {}
    fixed: list[str] = []
    for o in OverridesParser.create().parse_overrides(params):
        name = o.get_key_element()
        if not o.is_sweep_override():
            fixed.append(f"{name}={o.get_value_element_as_str()}")
            continue
        sweep = o.value()
        log_scale = "log" in getattr(sweep, "tags", set())
        if isinstance(sweep, IntervalSweep):
            if isinstance(sweep.start, int) and isinstance(sweep.end, int):
                space[name] = IntDistribution(int(sweep.start), int(sweep.end), log=log_scale)
            else:
                space[name] = FloatDistribution(float(sweep.start), float(sweep.end), log=log_scale)
        elif isinstance(sweep, ChoiceSweep | RangeSweep):
            space[name] = CategoricalDistribution(list(o.sweep_iterator()))
        else:
            raise ValueError(f"{name}: {type(sweep).__name__} is not an Optuna search space")
    return space, fixed


class OptunaSweeper(Sweeper):
    def __init__(
        self,
        direction: Any = "minimize",
        study_name: str | None = None,
        storage: str | None = None,
        n_trials: int = 20,
        n_jobs: int = 1,
        max_failure_rate: float = 0.0,
        sampler: Any = None,
        pruner: Any = None,
        params: Any = None,
    ) -> None:
        several = isinstance(direction, ListConfig | list | tuple)
        self.directions = [str(d) for d in (direction if several else [direction])]
        self.study_name, self.storage = study_name, storage
        self.n_trials, self.n_jobs, self.max_failure_rate = (
            int(n_trials),
            max(1, int(n_jobs)),
            max_failure_rate,
        )
        self.sampler_conf, self.pruner_conf = sampler, pruner
        self.params = dict(params or {})

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> None:
        import optuna
        from hydra.utils import instantiate

        from litvision.lifecycle.optuna_study import open_study

        space, fixed = distributions([*(f"{k}={v}" for k, v in self.params.items()), *arguments])
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # its per-trial lines go nowhere useful
        # Hydra hands the sweeper its sampler and pruner already built; the sampler is built again
        # from its config when its seed must move on (a resumed study).
        sampler, pruner = self.sampler_conf, self.pruner_conf or optuna.pruners.NopPruner()
        conf = OmegaConf.select(self.config, "hydra.sweeper.sampler")
        if conf is not None and conf.get("seed") is not None:
            n = len(open_study(sweep_dir, self.study_name, self.storage, self.directions).trials)
            if n:
                conf = OmegaConf.to_container(conf, resolve=True)
                sampler = instantiate({**conf, "seed": (int(conf["seed"]) + n) % 2**32})
        study = open_study(sweep_dir, self.study_name, self.storage, self.directions, sampler, pruner)
        trials = study.get_trials(deepcopy=False)
        stale = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
        done = sum(1 for t in trials if t.state.is_finished())
        new = max(0, self.n_trials - done - len(stale))
        log.info(f"Study {study.study_name}: {done} finished, {len(stale)} to run again, {new} new")
        print(
            f"Optuna study {study.study_name} ({done} finished trial(s), {len(stale)} to run again, {new} new "
            f"of n_trials={self.n_trials})"
        )
        for t in stale:  # killed mid-run: the same parameters, in the same folder
            self._launch(study, [(t.number, t.params)], fixed)
        while new > 0:
            batch = [study.ask(space) for _ in range(min(new, self.n_jobs))]
            self._launch(study, [(t.number, t.params) for t in batch], fixed)
            new -= len(batch)
        self._results(study, sweep_dir)

    def _launch(self, study: Any, trials: list[tuple[int, dict[str, Any]]], fixed: list[str]) -> None:
        import optuna

        from litvision.lifecycle.optuna_study import PRUNED_AT

        overrides = [tuple([*(f"{k}={v}" for k, v in params.items()), *fixed]) for _, params in trials]
        # Trials asked together have consecutive numbers: trial n runs in job folder n.
        returns = self.launcher.launch(overrides, initial_job_idx=trials[0][0])
        failures = []
        storage = study._storage
        for (number, _), ret in zip(trials, returns):
            trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
            try:
                raw = ret.return_value
                if PRUNED_AT in storage.get_trial(trial_id).user_attrs:
                    study.tell(number, state=optuna.trial.TrialState.PRUNED)
                    continue
                values = [float(raw)] if len(self.directions) == 1 else [float(v) for v in raw]
                study.tell(number, values)
            except Exception as e:
                study.tell(number, state=optuna.trial.TrialState.FAIL)
                log.warning(f"Failed trial {number}: {e}")
                failures.append(e)
        if failures and len(failures) / len(returns) > self.max_failure_rate:
            log.error(
                f"Failed {len(failures)} of {len(returns)} with max_failure_rate={self.max_failure_rate}."
            )
            for ret in returns:
                ret.return_value  # noqa: B018  the JobReturn raises with the job's own traceback
            raise failures[0]

    def _results(self, study: Any, sweep_dir: Path) -> None:
        import optuna

        if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
            return
        if len(self.directions) == 1:
            best = study.best_trial
            results: dict[str, Any] = {"name": "optuna", "best_params": best.params, "best_value": best.value}
            log.info(f"Best parameters: {best.params}; best value: {best.value}")
        else:
            results = {
                "name": "optuna",
                "solutions": [{"params": t.params, "values": t.values} for t in study.best_trials],
            }
        OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
