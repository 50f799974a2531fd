"""The model summary: one line on the console, the full table in the run's log file.

Lightning's RichModelSummary prints every submodule (metrics included) and a FLOPs column that is
all zeros unless the task defines `example_input_array`; on a plain run that is ~25 lines telling
the user one number. `verbose=true` prints the table (FLOPs only when they were measured).
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelSummary as LightningModelSummary
from lightning.pytorch.utilities.model_summary.model_summary import (
    _format_summary_table,
    get_formatted_model_size,
    get_human_readable_count,
)

log = logging.getLogger(__name__)


class ModelSummary(LightningModelSummary):
    def __init__(self, max_depth: int = 1, verbose: bool = False, **summarize_kwargs: Any) -> None:
        super().__init__(max_depth=max_depth, **summarize_kwargs)
        self.verbose = verbose
        self._model_name = "model"

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        net = getattr(pl_module, "net", None)
        self._model_name = type(net if net is not None else pl_module).__name__
        super().on_fit_start(trainer, pl_module)

    def summarize(  # type: ignore[override]  # Lightning's is a staticmethod; self.summarize(...) calls this
        self,
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        if not total_flops:  # not measured (no example_input_array): a column of zeros says nothing
            summary_data = [col for col in summary_data if col[0] != "FLOPs"]
        table = _format_summary_table(
            total_parameters,
            trainable_parameters,
            model_size,
            total_training_modes,
            total_flops,
            *summary_data,
        )
        if not total_flops:
            table = "\n".join(
                line for line in table.splitlines() if not line.rstrip().endswith("Total Flops")
            )
        log.info("model summary\n%s", table)
        if self.verbose:
            print(table, flush=True)
            return
        frozen = total_parameters - trainable_parameters
        print(
            f"model: {self._model_name}, {get_human_readable_count(total_parameters)} parameters"
            + (f" ({get_human_readable_count(frozen)} frozen)" if frozen else "")
            + f", {get_formatted_model_size(model_size)} MB",
            flush=True,
        )
