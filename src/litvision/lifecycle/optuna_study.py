"""The Optuna study of a sweep folder, and the pruning of its trials through Lightning.

The study lives in `<sweep folder>/optuna_journal.log` (Optuna's JournalStorage: an append-only file,
safe for several processes, no database server) unless the sweeper's `storage:` names another
Optuna storage URL; it is read with Optuna's own API:

    from litvision.lifecycle.optuna_study import load_study
    study = load_study("runs/digits_cnn/multirun/sweep-<id>")     # an optuna.Study
    [(t.number, t.state, t.value, t.params) for t in study.trials]

Trial n of the study is job folder <sweep>/<n>/. A sweep folder made before Optuna 4 (its study in
`optuna_study.json`) is read once into the journal, its finished trials kept.

Each job of a sweep with a `pruner` reports its monitored validation metric to its trial after every
epoch (optuna-integration's PyTorchLightningPruningCallback); when the pruner says stop, the run
stops like an early stop (it keeps its checkpoints and summary.json) and the sweeper records the
trial as PRUNED.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

JOURNAL_FILE = "optuna_journal.log"
LEGACY_FILE = "optuna_study.json"
#: User attribute a pruned job leaves on its trial (the epoch it was stopped at).
PRUNED_AT = "pruned_at_epoch"
SWEEPER = "hydra_plugins.litvision_optuna."


def storage_for(folder: str | Path, storage: str | None = None) -> Any:
    """The given Optuna storage URL, or the journal file in the sweep folder."""
    if storage:
        return str(storage)
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(Path(folder) / JOURNAL_FILE)))


def open_study(
    folder: str | Path,
    study_name: str | None,
    storage: str | None,
    directions: list[str],
    sampler: Any = None,
    pruner: Any = None,
) -> Any:
    """Create the sweep's study or load it again (same name, same directions)."""
    import optuna

    from litvision.errors import UserError

    legacy = Path(folder) / LEGACY_FILE
    fresh = not storage and not (Path(folder) / JOURNAL_FILE).is_file()
    store = storage_for(folder, storage)
    names = optuna.get_all_study_names(store)
    # A study without a name gets a random one: a rerun finds it as the folder's only study.
    name = study_name or (names[0] if len(names) == 1 else None)
    if name in names:
        # Not create_study(load_if_exists=True): on a journal that appends a failed "create" each rerun.
        study = optuna.load_study(study_name=name, storage=store, sampler=sampler, pruner=pruner)
    else:
        study = optuna.create_study(
            study_name=name, storage=store, sampler=sampler, pruner=pruner, directions=directions
        )
    have = [d.name.lower() for d in study.directions]
    if have != [d.lower() for d in directions]:
        raise UserError(
            f"{folder}: its study {study.study_name} has directions {have}, not {directions}; a resumed "
            "search keeps its direction (start a new sweep for another one)."
        )
    if fresh and legacy.is_file():
        _import_legacy(study, legacy)
    return study


def _import_legacy(study: Any, path: Path) -> None:
    """Finished trials of an optuna_study.json (litvision before Optuna 4) into the new study."""
    import optuna
    from optuna.distributions import json_to_distribution
    from optuna.trial import TrialState

    for t in json.loads(path.read_text()).get("trials", []):
        state = TrialState[t["state"]]
        if not state.is_finished():
            continue  # it gets a new trial number: its old folder would be reused by another trial
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                values=t["values"] if state == TrialState.COMPLETE else None,
                params=t["params"],
                distributions={k: json_to_distribution(v) for k, v in t["distributions"].items()},
                user_attrs=t.get("user_attrs") or {},
            )
        )
    print(f"{path}: {len(study.trials)} finished trial(s) read into {JOURNAL_FILE} (Optuna 4 study).")


def load_study(folder: str | Path) -> Any:
    """The study of a sweep folder as an `optuna.Study`."""
    import optuna

    from litvision.errors import UserError

    if not (Path(folder) / JOURNAL_FILE).is_file():
        raise UserError(f"{folder} has no {JOURNAL_FILE}: it is not an Optuna sweep folder.")
    storage = storage_for(folder)
    [summary] = optuna.get_all_study_summaries(storage) or [None]
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def pruning_callback(cfg: DictConfig) -> Any:
    """The Lightning callback that reports this sweep job's metric to its trial, or None when the
    job is not a trial of litvision's Optuna sweeper with a pruner."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    sweeper = hc.get("sweeper") or {}
    target = str(sweeper.get("_target_", ""))
    if not target.startswith(SWEEPER) or not sweeper.get("pruner") or not cfg.get("optimized_metric"):
        return None
    import optuna
    from hydra.utils import instantiate

    study = optuna.load_study(
        study_name=sweeper.get("study_name"),
        storage=storage_for(str(hc.sweep.dir), sweeper.get("storage")),
        pruner=instantiate(sweeper.pruner),
    )
    storage = study._storage
    trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, int(hc.job.num))
    return _StopOnPrune(optuna.trial.Trial(study, trial_id), monitor=str(cfg.optimized_metric))


def _stop_on_prune_class() -> type:
    from optuna_integration.pytorch_lightning import PyTorchLightningPruningCallback

    class StopOnPrune(PyTorchLightningPruningCallback):
        """optuna-integration's callback, but a pruned trial stops like an early stop instead of
        raising out of `fit`: the run keeps its summary.json and checkpoints (compare reads it) and
        the trial is marked for the sweeper, which tells Optuna it was pruned."""

        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            import optuna

            if trainer.state.fn != "fit" or PRUNED_AT in self._trial.user_attrs:
                return  # litvision validates the best checkpoint after fit: not an epoch to report
            try:
                super().on_validation_end(trainer, pl_module)
            except optuna.TrialPruned:
                self._trial.set_user_attr(PRUNED_AT, int(pl_module.current_epoch))
                trainer.should_stop = True

    return StopOnPrune


def _StopOnPrune(trial: Any, monitor: str) -> Any:  # noqa: N802  a class built on first use
    return _stop_on_prune_class()(trial, monitor=monitor)
