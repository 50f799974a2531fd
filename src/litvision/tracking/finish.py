"""The end of a run for every tracker: W&B gets the run facts in its summary and is closed, an
MLflow run gets summary.json and config.yaml as artifacts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def finish_trackers(loggers: list[Any], summary: Mapping[str, Any] | None = None) -> None:
    if any(type(lg).__module__ == "litvision.tracking.mlflow_logger" for lg in loggers):
        from litvision.tracking.mlflow_logger import finish as finish_mlflow

        finish_mlflow(loggers, summary)
    from litvision.tracking.wandb_logger import finish as finish_wandb

    finish_wandb(loggers, summary)
