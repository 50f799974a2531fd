"""Test a checkpoint with an experiment's data; writes its own run folder and summary.json.

make eval EXP=digits_cnn CKPT=runs/digits_cnn/<stamp>/checkpoints/best-epoch012.ckpt
python -m litvision.eval experiment=digits_cnn ckpt_path=<path>
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from litvision.config import config_dir, project_root
from litvision.train import run_guarded


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    import lightning as L

    from litvision.build import build_datamodule, build_task, build_trainer
    from litvision.utils import console
    from litvision.utils.run import git_info, save_config, to_floats, write_summary

    started = time.time()
    OmegaConf.resolve(cfg)
    run_dir = Path(cfg.paths.output_dir)
    console.print_start(cfg, str(run_dir))
    L.seed_everything(cfg.seed, workers=True)
    if cfg.model.get("net") is not None:
        from litvision.models.weights import without_pretrained

        # The checkpoint holds every weight: testing it must not fetch the pretrained ones.
        cfg.model.net = without_pretrained(cfg.model.net)
    datamodule = build_datamodule(cfg)
    task = build_task(cfg)
    trainer = build_trainer(cfg, callbacks=[])
    if trainer.is_global_zero:
        save_config(cfg, run_dir)
    test = to_floats(trainer.test(task, datamodule=datamodule, ckpt_path=cfg.ckpt_path, verbose=False)[0])
    summary = {
        "experiment": cfg.name,
        "task": "eval",
        "seed": cfg.seed,
        "run_dir": str(run_dir),
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
        "test": test,
        "wall_time_s": round(time.time() - started, 2),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **git_info(project_root()),
    }
    if trainer.is_global_zero:
        write_summary(run_dir, summary)
        console.print_summary(summary)
    return summary


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="eval")
def main(cfg: DictConfig) -> None:
    run_guarded(evaluate, cfg)


if __name__ == "__main__":
    from litvision.cli import evaluate as _cli_evaluate

    _cli_evaluate()
