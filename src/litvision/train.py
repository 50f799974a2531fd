"""Train an experiment: compose -> instantiate -> fit -> best checkpoint on val and test -> summary.json.

make train                                   # experiment=digits_cnn, ~1 min on 2 CPU cores
make train EXP=digits_cnn ARGS="trainer.max_epochs=5 model.optimizer.lr=1e-3"
python -m litvision.train experiment=digits_cnn debug=fast_dev_run
python -m litvision.train ckpt_path=runs/digits_cnn/<stamp>/checkpoints/last.ckpt   # resume
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from litvision.config import config_dir, project_root
from litvision.data.folders import register_resolvers
from litvision.errors import UserError

# Config resolvers (`${class_count:...}`) must exist before Hydra resolves a config.
register_resolvers()

log = logging.getLogger(__name__)

# Noise from Lightning's use of torch internals; says nothing about the user's run.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


def _checkpoint_callback(trainer: Any) -> Any:
    from lightning.pytorch.callbacks import ModelCheckpoint

    return next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one training job described by a composed config; returns its summary."""
    import lightning as L

    from litvision.build import build_datamodule, build_task, build_trainer
    from litvision.scale import (
        check_hardware,
        prepare_ddp_workers,
        release_ddp_launch,
        resume_checkpoint,
        scale_learning_rate,
    )
    from litvision.utils import console
    from litvision.utils.run import git_info, save_config, to_floats, write_summary

    started = time.time()
    check_hardware(cfg)
    OmegaConf.resolve(cfg)
    run_dir = Path(cfg.paths.output_dir)
    console.print_config_tree(cfg)
    console.print_start(cfg, str(run_dir))

    L.seed_everything(cfg.seed, workers=True)
    datamodule = build_datamodule(cfg)
    trainer = build_trainer(cfg)
    # The lr may scale with the global batch, known once the Trainer has counted devices and nodes.
    scaling = scale_learning_rate(cfg, trainer.num_devices * trainer.num_nodes)
    task = build_task(cfg)
    prepare_ddp_workers()
    ckpt_path = resume_checkpoint(cfg, run_dir)
    if trainer.is_global_zero:
        save_config(cfg, run_dir)

    if cfg.get("train", True):
        trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path)
        if trainer.interrupted:
            raise SystemExit(1)

    # Read the checkpoint callback now: validate/test below restore callback state from the
    # best checkpoint, which holds stale paths and scores.
    ckpt_cb = _checkpoint_callback(trainer)
    best = (ckpt_cb.best_model_path if ckpt_cb else "") or None
    fit_facts = {
        "best_score": float(ckpt_cb.best_model_score)
        if ckpt_cb and ckpt_cb.best_model_score is not None
        else None,
        "best_checkpoint": best,
        "last_checkpoint": (ckpt_cb.last_model_path or None) if ckpt_cb else None,
        "epochs_completed": trainer.current_epoch,
        "global_step": trainer.global_step,
    }
    best_val: dict[str, float] = {}
    if best:
        # Validate the best checkpoint again so that "best val" and "test" describe the same weights.
        best_val = to_floats(trainer.validate(task, datamodule=datamodule, ckpt_path=best, verbose=False)[0])
    test: dict[str, float] = {}
    if cfg.get("test", True):
        test = to_floats(trainer.test(task, datamodule=datamodule, ckpt_path=best, verbose=False)[0])

    summary = {
        "experiment": cfg.name,
        "task": "train",
        "seed": cfg.seed,
        "run_dir": str(run_dir),
        "monitor": cfg.monitor,
        "best_val": best_val,
        "test": test,
        **fit_facts,
        "world_size": trainer.world_size,
        **scaling,
        "wall_time_s": round(time.time() - started, 2),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **git_info(project_root()),
    }
    if trainer.is_global_zero:
        write_summary(run_dir, summary)
        console.print_summary(summary)
    from litvision.tracking.wandb_logger import finish

    finish(trainer.loggers, summary)
    release_ddp_launch(trainer)
    return summary


def run_guarded(fn: Any, cfg: DictConfig) -> Any:
    """Bad input -> one line on stderr and exit code 2; bugs keep their stack trace."""
    try:
        return fn(cfg)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def main(cfg: DictConfig) -> float | None:
    summary = run_guarded(train, cfg)
    # Hydra sweepers (Optuna) optimise the value the app returns.
    metric = cfg.get("optimized_metric")
    if metric:
        return summary["best_val"].get(metric, summary["test"].get(metric))
    return None


if __name__ == "__main__":
    from litvision.cli import train as _cli_train

    _cli_train()
