"""Log per-step training values only on the steps where someone reads them.

Lightning's `self.log` costs about as much CPU time per call as a small network's whole step
(it moves the stored value to the logged tensor's device and re-checks its metadata every call:
`_ResultCollection.log` -> `_ResultMetric.to` -> `apply_to_collection`), and a step value logged
with `on_step=True` is only read when the logger writes (every `trainer.log_every_n_steps` steps,
`_LoggerConnector.should_update_logs`), at the end of an epoch (callbacks and the summary read
`trainer.callback_metrics`), or when training stops (`max_steps`, or `should_stop` already set). So
the tasks log their step values on those steps only: the CSV/TensorBoard/W&B rows are the same as with
logging at every step, and `callback_metrics` holds the epoch's last value at its end. What changes:
between two logged steps, `callback_metrics["train/loss"]` (the progress bar's loss) keeps the last
logged step's value; and a stop decided after a step that was not logged (a time limit, a pre-emption
signal) writes that older value in the logger's last row.
`python -m bench step_overhead` measures the cost.
"""

from __future__ import annotations

from typing import Any


def step_values_read(module: Any) -> bool:
    """Whether values logged in this training step are read by anyone (see the module docstring)."""
    trainer = getattr(module, "_trainer", None)
    if trainer is None:  # a step called outside a Trainer: log as Lightning would
        return True
    try:
        return bool(
            trainer.fast_dev_run
            or trainer.should_stop
            or trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
            or 0 < trainer.max_steps <= trainer.global_step + 1  # training ends after this step
            or trainer._logger_connector.should_update_logs
        )
    except AttributeError:  # a Trainer without these internals: log every step
        return True
