"""Best and latest checkpoints: `best-*.ckpt` by the monitored metric, `last.ckpt` always the latest state.

Lightning's `ModelCheckpoint(save_last=True)` rewrites `last.ckpt` only in epochs where it also
saved a top-k file, i.e. when the monitored metric improved (its `on_validation_end` saves "last"
only `if self._last_global_step_saved == trainer.global_step`), and its `on_train_end` writes it
even under `fast_dev_run`. After a `kill -9` three epochs past the best one, resume would go back
to the best epoch. Here `last.ckpt` is written

- at the end of every epoch (where Lightning saves the best one: after the epoch's validation,
  or at the epoch end when validation is every k epochs or absent),
- every `last_every_n_train_steps` optimizer steps when that is set (null: epoch ends only),
- at the end of an epoch cut short by `max_steps` too (Lightning ends every epoch it starts with
  `on_train_epoch_end`, so no separate end-of-training write is needed),

never under `fast_dev_run` or in the sanity check. Every write goes through the Trainer's
checkpoint IO (`litvision.utils.checkpoint_io.AtomicCheckpointIO`: temp file + rename), so a kill
at any moment leaves the previous `last.ckpt` whole. `last_model_path` names the file, as before.

    make train ARGS="callbacks.model_checkpoint.last_every_n_train_steps=500"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from weakref import proxy

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint as _LightningModelCheckpoint


class ModelCheckpoint(_LightningModelCheckpoint):
    """Lightning's ModelCheckpoint for the best checkpoints; `last.ckpt` written by the rules above.

    The class keeps Lightning's name on purpose: a callback's state in a checkpoint is keyed by its
    class name and trigger settings, so runs checkpointed by either class resume with the other.
    """

    def __init__(
        self, *args: Any, save_last: bool = True, last_every_n_train_steps: int | None = None, **kwargs: Any
    ) -> None:
        # Lightning's own "last" logic stays off; this class writes last.ckpt itself.
        super().__init__(*args, save_last=False, **kwargs)
        n = last_every_n_train_steps
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            from litvision.errors import UserError

            raise UserError(
                f"callbacks.model_checkpoint.last_every_n_train_steps={n!r} is not a number of steps: "
                "use a positive integer, or null to write last.ckpt at epoch ends only."
            )
        self.keep_last = bool(save_last)
        self.last_every_n_train_steps = int(last_every_n_train_steps or 0)
        self._last_written_step: int | None = None

    @property
    def state_key(self) -> str:
        # Lightning names every callback hook call by `state_key` (for its profiler), which for
        # ModelCheckpoint formats a dict of its trigger settings: ~0.1 ms per hook, six hooks a
        # step. It is formatted again only when those settings change.
        settings = (
            self.monitor,
            self.mode,
            self._every_n_train_steps,
            self._every_n_epochs,
            self._train_time_interval,
        )
        cached = self.__dict__.get("_state_key_cache")
        if cached is None or cached[0] != settings:
            cached = self.__dict__["_state_key_cache"] = (settings, super().state_key)
        return cached[1]

    # -- when ------------------------------------------------------------------------------------
    def _may_write(self, trainer: L.Trainer) -> bool:
        from lightning.pytorch.trainer.states import TrainerFn

        return (
            self.keep_last
            and not trainer.fast_dev_run
            and not trainer.sanity_checking
            and trainer.state.fn == TrainerFn.FITTING
            and trainer.global_step > 0  # nothing trained yet: nothing worth keeping
        )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        # Lightning's batch-end save is driven by `every_n_train_steps` and `train_time_interval`
        # alone: with neither set (the default) it returns without doing anything, after working out
        # whether it could save (about 5 us a step, bench step_overhead). So it is asked only then.
        if self._every_n_train_steps >= 1 or self._train_time_interval is not None:
            super().on_train_batch_end(trainer, pl_module, *args)
        n = self.last_every_n_train_steps
        if not n or trainer.global_step % n or not self._may_write(trainer):
            return
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return  # the epoch-end write follows in a moment, with this epoch's validation in it
        self._write_last(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)  # best first: last.ckpt then records it
        if not self._should_save_on_train_epoch_end(trainer) and self._may_write(trainer):
            self._write_last(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        # Written already if this epoch ended with a validation that saves (above); not if the
        # checkpoint follows the epoch end, or the epoch had no validation (check_val_every_n_epoch).
        if self._may_write(trainer) and self._last_written_step != trainer.global_step:
            self._write_last(trainer)

    # -- restore ---------------------------------------------------------------------------------
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """The best checkpoints of the run this one continues, wherever its folder is now.

        Lightning keeps the best scores only when `dirpath` is unchanged, and warns otherwise ("The
        dirpath has changed ..."). Here the recorded paths are read relative to the folder the
        resumed checkpoint was loaded from (a run folder moved or copied keeps its best), and a
        fork of a finished run keeps the parent's best: the best over the lineage, which the
        extension replaces only by beating it. The parent's files lie outside this run's dirpath,
        so Lightning never deletes them (`_should_remove_checkpoint`).
        """
        old_dir = state_dict.get("dirpath") or self.dirpath
        ckpt = getattr(self._trainer, "ckpt_path", None) if self._trainer is not None else None
        rebase = _Rebase(old_dir, Path(ckpt).expanduser().resolve().parent) if ckpt else None
        best_k = {}
        for path, score in (state_dict.get("best_k_models") or {}).items():
            new = rebase(path) if rebase else path
            if new is not None:
                best_k[new] = score
        best = (
            rebase(state_dict.get("best_model_path") or "") if rebase else state_dict.get("best_model_path")
        )
        if best is None or (best and best not in best_k and best_k):
            # The best file is gone (a checkpoint copied without its folder): this run starts afresh.
            import logging

            logging.getLogger(__name__).info(
                "best checkpoint %s of the resumed run not found: best restarts",
                state_dict.get("best_model_path"),
            )
            return
        self.best_k_models = best_k
        self.best_model_path = best or ""
        self.best_model_score = state_dict.get("best_model_score") if best else None
        kth = (
            rebase(state_dict.get("kth_best_model_path") or "")
            if rebase
            else state_dict.get("kth_best_model_path")
        )
        self.kth_best_model_path = kth or ""
        self.kth_value = state_dict.get("kth_value", self.kth_value)
        last = rebase(state_dict.get("last_model_path") or "") if rebase else None
        # last.ckpt is this folder's own: another folder's is never "the last" of this run.
        if last and self.dirpath and Path(last).parent == Path(self.dirpath):
            self.last_model_path = last

    _trainer: Any = None

    def __warn_if_dir_not_empty(self, dirpath: Any) -> None:
        # Overrides Lightning's private check (this class has Lightning's name, so the mangled names
        # match). A resume continues in its own checkpoints/ folder, which is never empty; the
        # lifecycle already refuses a new run in a used folder. Kept for train.log only.
        import logging

        logging.getLogger(__name__).debug("checkpoint directory %s already holds files (a resume)", dirpath)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        # Restoring reads trainer.ckpt_path (set after setup): the folder the recorded paths lie in now.
        self._trainer = proxy(trainer)
        # With none of every_n_train_steps, train_time_interval and last_every_n_train_steps set (the
        # default), a batch's end has nothing to do: the hook is skipped for this run
        # (utils/callback_hooks.py) rather than dispatched at every step to return at once.
        idle = self._every_n_train_steps < 1 and self._train_time_interval is None
        if idle and not self.last_every_n_train_steps:
            self.on_train_batch_end = None  # type: ignore[method-assign,assignment]
        else:
            self.__dict__.pop("on_train_batch_end", None)

    def _save_topk_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, Any]) -> None:
        if (
            self.monitor is not None
            and self.monitor not in monitor_candidates
            and not trainer.fit_loop.epoch_loop.val_loop._has_run
        ):
            # Training ended before its first validation (max_steps, a time limit): there is no
            # best yet; `litvision fit` says so once and tests the last state.
            return
        super()._save_topk_checkpoint(trainer, monitor_candidates)

    # -- how -------------------------------------------------------------------------------------
    def _write_last(self, trainer: L.Trainer) -> None:
        path = self.format_checkpoint_name(self._monitor_candidates(trainer), self.CHECKPOINT_NAME_LAST)
        # Set before saving: the path is part of this callback's state inside the checkpoint.
        self.last_model_path = path
        # trainer.save_checkpoint, not self._save_checkpoint: the latter marks this step as saved,
        # which would make the best-checkpoint logic skip a top-k save at the same step.
        trainer.save_checkpoint(path, self.save_weights_only)
        self._last_written_step = trainer.global_step
        if trainer.is_global_zero:  # as Lightning does after its own saves (W&B log_model listens)
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))


class _Rebase:
    """A path recorded under the checkpoint's old `dirpath`, read under the folder it was loaded
    from now (the same folder unless the run folder was moved or copied); None if no file is there."""

    def __init__(self, old_dir: str | None, new_dir: Path) -> None:
        self.old_dir = Path(old_dir) if old_dir else None
        self.new_dir = new_dir

    def __call__(self, path: str) -> str | None:
        if not path:
            return ""
        p = Path(path)
        if self.old_dir is not None and self.old_dir in p.parents:
            p = self.new_dir / p.relative_to(self.old_dir)
        return str(p) if p.is_file() else None
