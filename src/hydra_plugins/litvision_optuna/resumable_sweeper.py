"""The name configs used before Optuna 4 (`_target_: ...resumable_sweeper.ResumableOptunaSweeper`):
now litvision's own Optuna sweeper (optuna_sweeper.py), which replaced hydra-optuna-sweeper."""

from hydra_plugins.litvision_optuna.optuna_sweeper import OptunaSweeper

ResumableOptunaSweeper = OptunaSweeper
