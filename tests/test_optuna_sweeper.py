"""litvision's Optuna 4 sweeper (hydra_plugins/litvision_optuna): Hydra's sweep syntax as Optuna
distributions, the study in a journal file in the sweep folder, trials pruned through Lightning.
(A killed search resumed by the same command: tests/test_sweep_resume.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import HELPERS_ENV, run_cli


def test_hydra_sweep_syntax_becomes_optuna_distributions() -> None:
    """Catches: `tag(log, ...)` read as a linear interval, an int interval sampled as floats, a plain
    value searched instead of fixed."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from hydra_plugins.litvision_optuna.optuna_sweeper import distributions

    space, fixed = distributions(
        [
            "model.optimizer.lr=tag(log, interval(1e-4, 3e-2))",
            "model.net.dropout=interval(0.0, 0.5)",
            "model.net.width=choice(16, 32, 64)",
            "trainer.max_epochs=int(interval(2, 5))",
            "seed=7",
        ]
    )
    assert space["model.optimizer.lr"] == FloatDistribution(1e-4, 3e-2, log=True)
    assert space["model.net.dropout"] == FloatDistribution(0.0, 0.5)
    assert space["model.net.width"] == CategoricalDistribution([16, 32, 64])
    assert space["trainer.max_epochs"] == IntDistribution(2, 5)
    assert fixed == ["seed=7"]


TINY = [
    "experiment=digits_cnn",
    "debug=limit",
    "trainer.max_epochs=3",
    "trainer.limit_train_batches=3",
    "callbacks.rich_progress_bar=null",
    "callbacks.model_summary=null",
    "callbacks.sample_grid=null",
    "logger=csv",
]


@pytest.mark.slow
def test_trials_are_pruned_through_lightning_and_the_study_is_kept(tmp_path: Path) -> None:
    """A pruner that prunes every reported value (accuracy is never above 1.1): each trial stops
    after its first epoch with its summary.json, and Optuna records it PRUNED with that epoch's
    val/acc; the same command again finds the study finished and trains nothing.
    Catches: the pruning callback never added to a trial's Trainer (3 epochs, COMPLETE), a pruned
    trial told to Optuna as COMPLETE (or FAIL), the validation of the best checkpoint after fit
    reported as one more epoch (two reports, pruned at 1), a rerun appending to the journal."""
    from litvision.lifecycle.optuna_study import JOURNAL_FILE, PRUNED_AT, load_study

    runs = tmp_path / "runs"
    args = [
        "hparams_search=digits_cnn_optuna",
        "hydra.sweeper.n_trials=2",
        # digits_cnn_optuna's MedianPruner turned into a ThresholdPruner(lower=1.1, n_warmup_steps=0).
        "hydra.sweeper.pruner._target_=optuna.pruners.ThresholdPruner",
        "~hydra.sweeper.pruner.n_startup_trials",
        "hydra.sweeper.pruner.n_warmup_steps=0",
        "+hydra.sweeper.pruner.lower=1.1",
        *TINY,
        f"paths.runs_dir={runs}",
    ]
    first = run_cli("litvision", "sweep", *args, env=HELPERS_ENV, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    [sweep] = (runs / "digits_cnn" / "multirun").iterdir()
    assert (sweep / JOURNAL_FILE).is_file()
    study = load_study(sweep)
    assert [(t.number, t.state.name) for t in study.trials] == [(0, "PRUNED"), (1, "PRUNED")]
    for t in study.trials:
        summary = json.loads((sweep / str(t.number) / "summary.json").read_text())
        assert summary["epochs_completed"] == 1
        # One report (the first validation), pruned there: Lightning's epoch counter at that point.
        [(step, value)] = t.intermediate_values.items()
        assert t.user_attrs[PRUNED_AT] == step and value == pytest.approx(summary["best_val"]["val/acc"])
    journal = (sweep / JOURNAL_FILE).read_bytes()

    again = run_cli("litvision", "sweep", *args, env=HELPERS_ENV, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 finished trial(s), 0 to run again, 0 new" in again.stdout
    assert len(load_study(sweep).trials) == 2
    assert (sweep / JOURNAL_FILE).read_bytes() == journal
