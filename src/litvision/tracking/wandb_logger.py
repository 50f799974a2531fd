"""The W&B logger of a litvision run: its id lives in the run folder, so a resume continues it.

`configs/logger/wandb.yaml` names `WandbLogger` below; `build_logger` fills in what only the
run knows: the run id (`<run>/wandb_run_id`, created once, reused on resume or SLURM
requeue), the run name (experiment + the run folder's timestamp), the group (the experiment),
the tags (model, data, the config's `tags`), the full resolved config, and the mode.

Mode: `logger.wandb.mode=null` (the default) logs online when an API key is found
(WANDB_API_KEY, ~/.netrc from `wandb login`) and offline otherwise; WANDB_MODE in the
environment wins. Offline runs are written to `<run>/wandb/offline-run-*` for a later
`wandb sync`. No key or other secret is ever written by this module.
"""

from __future__ import annotations

import os
import secrets
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from litvision.tracking.modes import resolve_mode

RUN_ID_FILE = "wandb_run_id"
_ID_ALPHABET = string.ascii_lowercase + string.digits


class WandbLogger(_LightningWandbLogger):
    """Lightning's WandbLogger whose run config is exactly the resolved litvision config.

    Lightning would merge the module's and the DataModule's hyperparameters into the top
    level of the W&B config (where, e.g., the DataModule's `seed` would overwrite the run's);
    they all come from the resolved config already, so they are kept apart under `hparams`.
    """

    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        from lightning.fabric.utilities.logger import (
            _convert_json_serializable,
            _convert_params,
            _sanitize_callable_params,
        )

        params = _convert_json_serializable(_sanitize_callable_params(_convert_params(params)))
        self.experiment.config.update({"hparams": params}, allow_val_change=True)


def run_id(run_dir: str | Path, create: bool = True) -> str | None:
    """The W&B run id stored in the run folder; the first time, WANDB_RUN_ID (what `wandb agent`
    hands each sweep run) or a new id, written there so that a resume continues the same W&B run."""
    path = Path(run_dir) / RUN_ID_FILE
    if path.is_file():
        stored = path.read_text().strip()
        if stored:
            return stored
    if not create:
        return None
    new = os.environ.get("WANDB_RUN_ID") or "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(new + "\n")
    os.replace(tmp, path)
    return new


def run_name(experiment: str, run_dir: str | Path) -> str:
    """`<experiment>_<timestamp>` (plus `_<job>` in a sweep): stable across resumes of the run."""
    parts = Path(run_dir).resolve().parts
    tail = list(parts[parts.index(experiment) + 1 :]) if experiment in parts else [parts[-1]]
    tail = [p for p in tail if p != "multirun"]
    return "_".join([experiment, *tail])


def run_tags(cfg: DictConfig) -> list[str]:
    """Model and data config names (what `model=`/`data=` chose), then the config's own `tags`."""
    tags: list[str] = []
    try:
        from hydra.core.hydra_config import HydraConfig

        choices = HydraConfig.get().runtime.choices
        tags += [str(choices[g]) for g in ("model", "data") if choices.get(g)]
    except (ValueError, AttributeError, KeyError):
        pass  # composed without Hydra's runtime config: the config's tags alone
    tags += [str(t) for t in cfg.get("tags") or []]
    return list(dict.fromkeys(tags))


def wandb_kwargs(cfg: DictConfig, node: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor arguments of the W&B logger for this run: the config node plus the run's identity."""
    kwargs = dict(node)
    kwargs.pop("_target_", None)
    run_dir = Path(kwargs.get("save_dir") or cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)  # wandb falls back to /tmp if `dir` does not exist
    mode = resolve_mode(kwargs.pop("mode", None))
    kwargs.pop("offline", None)  # Lightning's `offline` flips WANDB_MODE for the whole process
    kwargs.update(
        save_dir=str(run_dir),
        mode=mode,
        # Only rank zero starts the W&B run; other ranks must not race to create the id file.
        id=kwargs.get("id") or run_id(run_dir, create=rank_zero_only.rank == 0),
        resume="allow",
        name=kwargs.get("name") or run_name(str(cfg.name), run_dir),
        group=kwargs.get("group") or str(cfg.name),
        tags=list(kwargs.get("tags") or run_tags(cfg)),
        config=OmegaConf.to_container(cfg, resolve=True),
    )
    return kwargs


def build_logger(cfg: DictConfig, node: DictConfig) -> Any:
    """Instantiate one `logger:` entry; W&B loggers get the run's id, name, group, tags and config."""
    from hydra.utils import get_class, instantiate

    cls = get_class(node._target_)
    if not issubclass(cls, _LightningWandbLogger):
        return instantiate(node)
    import wandb

    if wandb.run is not None:
        # A run left open in this process (a notebook, or a failed in-process run) would
        # otherwise swallow this one: Lightning reuses `wandb.run` when it exists.
        wandb.finish()
    kwargs = wandb_kwargs(cfg, OmegaConf.to_container(node, resolve=True))
    if kwargs["mode"] == "offline" and rank_zero_only.rank == 0:
        print(
            f"W&B offline (no API key, or WANDB_MODE=offline): run {kwargs['id']} is written to "
            f"{kwargs['save_dir']}/wandb/; upload it later with `wandb sync {kwargs['save_dir']}/wandb/offline-run-*`"
        )
    return cls(**kwargs)


def finish(loggers: list[Any], summary: Mapping[str, Any] | None = None) -> None:
    """Close the W&B run of a finished job (rank zero), adding run facts to its W&B summary;
    an MLflow run gets summary.json and config.yaml as artifacts (litvision.tracking.mlflow_logger)."""
    if any(type(lg).__module__ == "litvision.tracking.mlflow_logger" for lg in loggers):
        from litvision.tracking.mlflow_logger import finish as finish_mlflow

        finish_mlflow(loggers, summary)
    for logger in loggers:
        if not isinstance(logger, _LightningWandbLogger) or logger._experiment is None:
            continue
        if summary and rank_zero_only.rank == 0:
            extra = {
                k: summary.get(k) for k in ("wall_time_s", "epochs_completed", "epochs", "best_checkpoint")
            }
            logger.experiment.summary.update({k: v for k, v in extra.items() if v is not None})
        logger.experiment.finish()
