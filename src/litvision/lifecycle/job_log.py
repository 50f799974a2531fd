"""A run's log file (<run folder>/<command>.log, Hydra's job_logging handler on the root logger):
opened when the run folder exists, closed when a sweep's job ends."""

from __future__ import annotations

import logging
from pathlib import Path


def open_job_log() -> None:
    """What Hydra's app would do: the run's log file (train.log) from configs/hydra/job_logging."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import configure_log
    from omegaconf import OmegaConf

    # A root of its own: the composed config no longer carries `hydra`, which job_logging refers to.
    root = OmegaConf.create({"hydra": OmegaConf.to_container(HydraConfig.get(), resolve=False)})
    configure_log(root.hydra.job_logging, root.hydra.verbose)


def close_job_log(run_dir: Path) -> None:
    """Detach and close the job's log file as the job ends. With hydra/hydra_logging=none Hydra no
    longer resets the root logger after a job, so the handler would stay attached and take what is
    logged next: the launcher's `#2 : ...` line (appended to a finished job's log, which a rerun must
    leave as it is) and the sweep's closing comparison."""
    job_dir = run_dir.resolve()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).resolve().is_relative_to(
            job_dir
        ):
            root.removeHandler(handler)
            handler.close()
