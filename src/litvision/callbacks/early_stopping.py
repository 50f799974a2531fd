"""Early stopping that an extended run can use, and that a run ending before validation survives.

Lightning's `EarlyStopping.load_state_dict` restores `wait_count` and `patience` from the
checkpoint. A run that early stopping ended, extended with `trainer.max_epochs=<more>`, would then
stop after one epoch, and a new `callbacks.early_stopping.patience` on the command line would be
ignored. Here:

- `patience` (and every other setting) is always the configured one: the config, not the
  checkpoint, says how patient this run is;
- on an extension (`extending`, set by `litvision fit` for a fork of a finished run or a resume
  that raises `trainer.max_epochs`/`max_steps`) the count of validations without improvement
  starts again at 0 and the stop is forgotten; the best score carries over, so the extension stops
  when it has not beaten the whole lineage's best for `patience` validations;
- a plain resume of an interrupted run keeps its count (it continues, it is not extended);
- a check before any validation of this fit has run (`trainer.max_steps` reached mid-epoch, a time
  limit) is skipped instead of raising Lightning's "conditioned on metric ... which is not
  available"; `litvision fit` says once that the run ended before its first validation. A metric
  still missing after a validation is a wrong `monitor`, and is refused as Lightning does.

    make train ARGS="resume=runs/digits_cnn/<stamp> trainer.max_epochs=60 callbacks.early_stopping.patience=10"
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping as _LightningEarlyStopping
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason

log = logging.getLogger(__name__)


class EarlyStopping(_LightningEarlyStopping):
    """Lightning's EarlyStopping with the configured patience winning over the checkpoint's.

    The class keeps Lightning's name on purpose: a callback's state in a checkpoint is keyed by its
    class name and settings, so runs checkpointed by either class resume with the other.
    """

    # Class attributes, not an __init__: Lightning's signature stays the one config checks read
    # (a misspelt `callbacks.early_stopping.patiance` is refused by name).
    #: Set by `litvision fit` before `trainer.fit` when this run extends an earlier one.
    extending: bool = False
    #: The state the checkpoint held (None: started fresh), for the note of an extension.
    restored: dict[str, Any] | None = None
    _validated: bool = False
    _stage: str | None = None

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        patience = self.patience
        super().load_state_dict(state_dict)
        self.restored = dict(state_dict)
        self.patience = patience  # the configured value, whatever the checkpoint recorded
        # validate/test of the best checkpoint restore callbacks too: only fit's restore extends.
        if self.extending and self._stage == "fit":
            self.wait_count = 0
            self.stopped_epoch = 0
            self.stopping_reason = EarlyStoppingReason.NOT_STOPPED
            self.stopping_reason_message = None
            from litvision.utils.warn import tell_user

            was = state_dict.get("patience")
            tell_user(
                log,
                f"extension: early stopping counts again from 0, patience {self.patience}"
                + (f" (was {was})" if was is not None and was != self.patience else "")
                # No number: early stopping's best moves only by more than min_delta, so it can
                # differ from the best checkpoint's score, the one the summary names.
                + f"; the best {self.monitor} so far carries over",
            )

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._validated = False
        self._stage = stage

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._validated = True
        super().on_validation_end(trainer, pl_module)

    def _run_early_stopping_check(self, trainer: L.Trainer) -> None:
        if self.monitor not in trainer.callback_metrics and not self._validated:
            # Training ended (or an epoch passed) before any validation: nothing to compare yet.
            log.info(
                "early stopping: no %s yet (no validation has run in this fit); check skipped", self.monitor
            )
            return
        super()._run_early_stopping_check(trainer)
