"""The W&B logger of a litvision run: its id lives in the run folder, so a resume continues it.

`configs/logger/wandb.yaml` names `WandbLogger` below; `build_logger` fills in what only the
run knows: the run id (`<run>/wandb_run_id`, created once, reused on resume or SLURM
requeue), the run name (experiment + the run folder's timestamp), the group (the experiment),
the tags (model, data, the config's `tags`), the full resolved config, and the mode.

Mode: `logger.wandb.mode=null` (the default) logs online when an API key is found
(WANDB_API_KEY, ~/.netrc from `wandb login`) and offline otherwise; WANDB_MODE in the
environment wins. Offline runs are written to `<run>/wandb/offline-run-*` for a later
`wandb sync`. No key or other secret is ever written by this module.

Online without a way to log online (no API key, the server's host unreachable, or `wandb.init`
not answered within `logger.wandb.init_timeout` seconds): with `offline_fallback: true` (the
default) the run logs offline and says so in one line, so a compute node without internet still
keeps its W&B record for `wandb sync`; with `false` it stops in one line. wandb itself would wait
90 s and then raise (or prompt for a key on a terminal).
"""

from __future__ import annotations

import os
import secrets
import string
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from litvision.tracking.modes import has_api_key, resolve_mode

RUN_ID_FILE = "wandb_run_id"
_ID_ALPHABET = string.ascii_lowercase + string.digits
# How long the reachability probe waits for DNS + TCP connect to the W&B server.
PROBE_TIMEOUT_S = 5.0


class WandbLogger(_LightningWandbLogger):
    """Lightning's WandbLogger whose run config is exactly the resolved litvision config.

    Lightning would merge the module's and the DataModule's hyperparameters into the top
    level of the W&B config (where, e.g., the DataModule's `seed` would overwrite the run's);
    they all come from the resolved config already, so they are kept apart under `hparams`.

    `init_timeout` bounds `wandb.init` (wandb's own default is 90 s); if an online start fails,
    `offline_fallback` decides between logging offline (with one line saying why) and a UserError.
    """

    def __init__(
        self, *args: Any, init_timeout: float = 15.0, offline_fallback: bool = True, **kwargs: Any
    ) -> None:
        settings = dict(kwargs.pop("settings", None) or {})
        settings["init_timeout"] = float(init_timeout)
        # W&B's banner, its warnings (Lightning passes `anonymous`: "The anonymous setting has no
        # effect") and its end-of-run history go to the run's log file, not the console; its errors
        # still show. litvision says in one line where an offline run is and how to sync it.
        settings.setdefault("show_info", False)
        settings.setdefault("show_warnings", False)
        super().__init__(*args, settings=settings, **kwargs)
        self.offline_fallback = bool(offline_fallback)

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        import wandb

        start = _LightningWandbLogger.experiment.fget.__wrapped__  # Lightning's getter, rank check done here
        if self._experiment is None:
            _terminal_to_log(self._wandb_init.get("settings"))
        if self._experiment is not None or self._wandb_init.get("mode") != "online":
            return start(self)
        try:
            return start(self)
        except wandb.errors.Error as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            save_dir = str(self._wandb_init.get("dir"))
            self._wandb_init["mode"] = go_offline(
                f"wandb.init failed ({reason})", save_dir, self.offline_fallback
            )
            self._experiment = None
            # The wandb service still holds the failed run's id ("run ID ... is in use"): stop it.
            wandb.teardown()
            return start(self)

    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        from lightning.fabric.utilities.logger import (
            _convert_json_serializable,
            _convert_params,
            _sanitize_callable_params,
        )

        params = _convert_json_serializable(_sanitize_callable_params(_convert_params(params)))
        self.experiment.config.update({"hparams": params}, allow_val_change=True)


def _terminal_to_log(settings: Any) -> None:
    """What W&B does not print (show_info/show_warnings off) goes to the run's log file.

    wandb sends the messages it does not print to a fallback logger, set only by `wandb.termsetup`
    (wandb.setup passes None: dropped). Set here after wandb.setup, before wandb.init prints."""
    import logging

    import wandb

    try:
        from wandb.errors import term

        wandb.setup(
            settings=settings
            if isinstance(settings, wandb.Settings)
            else wandb.Settings(**dict(settings or {}))
        )
        term._logger = logging.getLogger("litvision.wandb")  # the root logger's file handler: train.log
    except (ImportError, AttributeError, TypeError, ValueError):
        pass  # another wandb version: its lines stay on the console, nothing breaks


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


def online_problem(base_url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why logging online cannot work from here (no API key, server unreachable), or None.

    The probe is a DNS lookup and TCP connect to the server, in a thread so that a silent network
    (dropped packets, a hanging resolver) costs `timeout` seconds, not wandb's 90. Behind an HTTP(S)
    proxy there is nothing to probe directly: wandb's init_timeout decides there.
    """
    import socket
    from urllib.parse import urlparse

    if not has_api_key():
        return "no W&B API key found (WANDB_API_KEY, or `wandb login`)"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    url = urlparse(base_url)
    host, port = url.hostname or "", url.port or (80 if url.scheme == "http" else 443)
    result: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(None)
        except OSError as e:
            result.append(e.strerror or str(e) or type(e).__name__)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout)
    if not result:
        return f"the W&B server {host}:{port} did not answer within {timeout:g} s"
    return None if result[0] is None else f"the W&B server {host}:{port} is unreachable ({result[0]})"


def go_offline(problem: str, save_dir: str, fallback: bool) -> str:
    """The mode to log in after an online start failed: "offline" with one line on stderr, or a UserError."""
    if not fallback:
        from litvision.errors import UserError

        raise UserError(
            f"W&B online logging is not possible: {problem}. Fix that, or log offline (WANDB_MODE=offline) "
            "and `wandb sync` later, or set logger.wandb.offline_fallback=true."
        )
    print(
        f"warning: W&B online logging is not possible: {problem}; logging offline to {save_dir}/wandb/ instead "
        f"(upload later with `wandb sync {save_dir}/wandb/offline-run-*`).",
        file=sys.stderr,
        flush=True,
    )
    return "offline"


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
    if kwargs["mode"] == "online" and rank_zero_only.rank == 0:
        problem = online_problem(os.environ.get("WANDB_BASE_URL") or wandb.Settings().base_url)
        if problem:
            kwargs["mode"] = go_offline(problem, kwargs["save_dir"], kwargs.get("offline_fallback", True))
    elif kwargs["mode"] == "offline" and rank_zero_only.rank == 0:
        print(
            f"W&B offline (no API key, or WANDB_MODE=offline): run {kwargs['id']} is written to "
            f"{kwargs['save_dir']}/wandb/; upload it later with `wandb sync {kwargs['save_dir']}/wandb/offline-run-*`"
        )
    return cls(**kwargs)


def finish(loggers: list[Any], summary: Mapping[str, Any] | None = None) -> None:
    """Close the W&B run of a finished job (rank zero), adding run facts to its W&B summary."""
    for logger in loggers:
        if not isinstance(logger, _LightningWandbLogger) or logger._experiment is None:
            continue
        if summary and rank_zero_only.rank == 0:
            extra = {
                k: summary.get(k) for k in ("wall_time_s", "epochs_completed", "epochs", "best_checkpoint")
            }
            logger.experiment.summary.update({k: v for k, v in extra.items() if v is not None})
        logger.experiment.finish()
