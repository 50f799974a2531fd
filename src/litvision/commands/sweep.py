"""`litvision sweep` / `python -m litvision.train --multirun`: a Hydra multirun (grid, Optuna, SLURM
via hydra-submitit-launcher), each job one run through the same lifecycle as `litvision fit`.

    litvision sweep experiment=digits_cnn model.optimizer.lr=1e-3,1e-2 seed=1,2,3
    litvision sweep experiment=digits_cnn hparams_search=digits_cnn_optuna

Hydra makes each job's folder (runs/<experiment>/multirun/<stamp>/<n>/); a job whose folder already
holds a finished run is skipped, and one holding an interrupted run (a requeued SLURM job)
continues from its last.ckpt.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import hydra
from omegaconf import DictConfig

from litvision.config import config_dir
from litvision.data.folders import register_resolvers

# Config resolvers (`${class_count:...}`) must exist before Hydra resolves a config.
register_resolvers()

_SWEEP_SYNTAX = re.compile(r"[\[\](){}]|^\w+\(")


def check_sweep(args: list[str]) -> None:
    """Compose the first job's config, so a typo fails in one line before any folder exists."""
    from litvision.config import check_experiment, compose_checked
    from litvision.lifecycle.checks import preflight
    from litvision.lifecycle.runner import value_of

    exp = value_of(args, "experiment")
    if exp is not None:
        check_experiment(exp)
    first = []
    for a in args:
        if a.startswith("-") or "=" not in a:
            continue
        key, value = a.split("=", 1)
        if key.startswith(("hydra", "+hydra")):
            continue
        if _SWEEP_SYNTAX.search(value):
            return  # range()/choice()/interval(): leave the expansion to Hydra
        first.append(f"{key}={value.split(',')[0]}")
    cfg = compose_checked(first, "train")
    if any(a.startswith("hydra/launcher=") for a in args):
        # Jobs run on other machines (SLURM): this one's GPUs and disks say nothing about theirs.
        from litvision.lifecycle.checks import check_values

        check_values(cfg)
    else:
        preflight(cfg)


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def _job(cfg: DictConfig) -> float | None:
    from litvision.errors import guarded

    summary = guarded(_run_job, cfg)
    # Hydra sweepers (Optuna) optimise the value the app returns.
    metric = cfg.get("optimized_metric")
    if metric:
        return summary.get("best_val", {}).get(metric, summary.get("test", {}).get(metric))
    return None


def _run_job(cfg: DictConfig) -> dict[str, Any]:
    from pathlib import Path

    from litvision.lifecycle import run_folder
    from litvision.lifecycle.runner import COMMANDS, execute, plan_for_config

    run_dir = Path(cfg.paths.output_dir)
    if run_folder.is_finished(run_dir):
        summary = run_folder.read_summary_safely(run_dir) or {}
        print(f"{run_dir} is finished: skipped.", file=sys.stderr)
        return summary
    return execute(plan_for_config(COMMANDS["fit"], cfg, job=True))


def main() -> None:
    from litvision.errors import guarded

    guarded(check_sweep, sys.argv[1:])
    _job()
