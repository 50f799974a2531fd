"""Config -> objects: the DataModule, the task, callbacks, loggers and the Trainer.

The one place that calls `hydra.utils.instantiate` on the composed config, shared by
train, eval, benchmarks and notebooks.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig


def _user_errors_unwrapped(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Hydra wraps constructor errors in InstantiationException; a UserError must reach the CLI as itself."""
    from litvision.errors import find_user_error

    try:
        return fn(*args, **kwargs)
    except Exception as e:
        user_error = find_user_error(e)
        if user_error is not None and user_error is not e:
            raise user_error from None
        raise


def build_datamodule(cfg: DictConfig) -> Any:
    from hydra.utils import instantiate

    return _user_errors_unwrapped(instantiate, cfg.data, _convert_="all")


def build_task(cfg: DictConfig) -> Any:
    from hydra.utils import instantiate

    task = _user_errors_unwrapped(instantiate, cfg.model)
    # Read by the task's optimizer set-up, which knows the world size (tasks/optim.py: lr_scale).
    task.lr_scaling = {
        "rule": cfg.get("scale_lr"),
        "base_batch_size": cfg.get("base_batch_size"),
        "batch_size": (cfg.get("data") or {}).get("batch_size"),
    }
    return task


def _instantiate_group(group: DictConfig | None) -> list[Any]:
    from hydra.utils import instantiate

    if not group:
        return []
    return [instantiate(c) for c in group.values() if c is not None and "_target_" in c]


def _without_disabled_displays(cfg: DictConfig, callbacks: list[Any]) -> list[Any]:
    """Drop progress-bar / model-summary callbacks the Trainer's flags turn off.

    `trainer.enable_progress_bar=false` (cluster logs) with a RichProgressBar in `callbacks` makes
    Lightning raise MisconfigurationException; the flag is the user's intent, so it wins.
    """
    trainer = cfg.get("trainer") or {}
    drop: list[type] = []
    if trainer.get("enable_progress_bar", True) is False:
        from lightning.pytorch.callbacks import ProgressBar

        drop.append(ProgressBar)
    if trainer.get("enable_model_summary", True) is False:
        from lightning.pytorch.callbacks import ModelSummary

        drop.append(ModelSummary)
    return [c for c in callbacks if not isinstance(c, tuple(drop))] if drop else callbacks


def build_callbacks(cfg: DictConfig) -> list[Any]:
    group = _user_errors_unwrapped(_instantiate_group, cfg.get("callbacks"))
    callbacks = _without_disabled_displays(cfg, group)
    if cfg.get("compile") or cfg.get("channels_last"):
        from litvision.callbacks.performance import PerformanceSwitches

        switches = PerformanceSwitches(
            compile=bool(cfg.get("compile")), channels_last=bool(cfg.get("channels_last"))
        )
        callbacks.append(switches)
    # Lightning would call each callback's empty per-batch hooks at every step (utils/callback_hooks.py).
    from litvision.utils.callback_hooks import skip_empty_batch_hooks

    return skip_empty_batch_hooks(callbacks)


def build_loggers(cfg: DictConfig) -> list[Any]:
    # W&B loggers also take the run's id (kept in the run folder for resume), tags and config.
    from litvision.tracking.wandb_logger import build_logger

    group = cfg.get("logger")
    if not group:
        return []
    return [build_logger(cfg, c) for c in group.values() if c is not None and "_target_" in c]


def build_trainer(
    cfg: DictConfig, callbacks: list[Any] | None = None, loggers: list[Any] | None = None
) -> Any:
    from hydra.utils import instantiate

    callbacks = build_callbacks(cfg) if callbacks is None else callbacks
    loggers = build_loggers(cfg) if loggers is None else loggers
    from litvision.hardware import trainer_plugins

    plugins = trainer_plugins(cfg)
    extra = {}
    if cfg.trainer.get("benchmark") is None:
        extra["benchmark"] = cudnn_benchmark(cfg)
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=plugins, **extra)


def cudnn_benchmark(cfg: DictConfig) -> bool:
    """What `trainer.benchmark: null` means here: cuDNN's autotuner on for classification, off otherwise.

    Every classification batch has one image size, so timing the convolution kernels for it once
    (torch.backends.cudnn.benchmark) and keeping the fastest pays from the first epoch on. Detection
    batches come in many sizes, each of which would be timed again; and `trainer.deterministic=true`
    needs the default kernels. Lightning's own default (False unless set) leaves the speed unused.
    """
    if cfg.trainer.get("deterministic"):
        return False
    return str((cfg.get("model") or {}).get("_target_", "")).endswith("ClassificationTask")
