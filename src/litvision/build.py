"""Config -> objects: the DataModule, the task, callbacks, loggers and the Trainer.

The one place that calls `hydra.utils.instantiate` on the composed config, shared by
train, eval, benchmarks and notebooks.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig


def build_datamodule(cfg: DictConfig) -> Any:
    from hydra.utils import instantiate

    return instantiate(cfg.data, _convert_="all")


def build_task(cfg: DictConfig) -> Any:
    from hydra.utils import instantiate

    return instantiate(cfg.model)


def _instantiate_group(group: DictConfig | None) -> list[Any]:
    from hydra.utils import instantiate

    if not group:
        return []
    return [instantiate(c) for c in group.values() if c is not None and "_target_" in c]


def build_callbacks(cfg: DictConfig) -> list[Any]:
    callbacks = _instantiate_group(cfg.get("callbacks"))
    if cfg.get("compile") or cfg.get("channels_last"):
        from litvision.callbacks.performance import PerformanceSwitches

        switches = PerformanceSwitches(
            compile=bool(cfg.get("compile")), channels_last=bool(cfg.get("channels_last"))
        )
        callbacks.append(switches)
    return callbacks


def build_loggers(cfg: DictConfig) -> list[Any]:
    return _instantiate_group(cfg.get("logger"))


def build_trainer(cfg: DictConfig, callbacks: list[Any] | None = None, loggers: list[Any] | None = None) -> Any:
    from hydra.utils import instantiate

    callbacks = build_callbacks(cfg) if callbacks is None else callbacks
    loggers = build_loggers(cfg) if loggers is None else loggers
    from litvision.scale import trainer_plugins

    plugins = trainer_plugins(cfg)
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=plugins)
