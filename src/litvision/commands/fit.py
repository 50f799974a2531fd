"""`litvision fit`: train, validate the best checkpoint again, test it.

litvision fit experiment=digits_cnn trainer.max_epochs=5
litvision fit resume=runs/digits_cnn/<stamp>          # an interrupted run, with its own config
"""

from __future__ import annotations

from typing import Any

from litvision.lifecycle.session import Session
from litvision.lifecycle.spec import Command


def _checkpoint_callback(trainer: Any) -> Any:
    from lightning.pytorch.callbacks import ModelCheckpoint

    return next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)


def run(session: Session) -> dict[str, Any]:
    from litvision.hardware import prepare_ddp_workers, release_ddp_launch
    from litvision.utils.run import to_floats

    cfg = session.cfg
    datamodule = session.datamodule()
    task = session.task()  # before the Trainer: a refused weights file stops the run before it prints
    trainer = session.trainer()
    prepare_ddp_workers()
    early_stopping = _early_stopping(trainer)
    if early_stopping is not None:
        early_stopping.extending = session.extending
    ckpt_cb = _checkpoint_callback(trainer)
    if cfg.get("train", True):
        trainer.fit(task, datamodule=datamodule, ckpt_path=session.ckpt_path)
        if trainer.interrupted:
            raise SystemExit(1)
        _tell_early_stop(early_stopping, ckpt_cb)
        _tell_no_validation(trainer, ckpt_cb, cfg.monitor)

    extensions = _schedule_extensions(trainer)
    # Read the checkpoint callback now: validate/test below restore callback state from the
    # best checkpoint, which holds stale paths and scores.
    best = (ckpt_cb.best_model_path if ckpt_cb else "") or None
    fields: dict[str, Any] = {
        "monitor": cfg.monitor,
        "best_score": float(ckpt_cb.best_model_score)
        if ckpt_cb and ckpt_cb.best_model_score is not None
        else None,
        "best_checkpoint": best,
        "last_checkpoint": (ckpt_cb.last_model_path or None) if ckpt_cb else None,
        "epochs_completed": trainer.current_epoch,
        "global_step": trainer.global_step,
    }
    best_val: dict[str, float] = {}
    if best:
        # Validate the best checkpoint again so that "best val" and "test" describe the same weights.
        best_val = to_floats(trainer.validate(task, datamodule=datamodule, ckpt_path=best, verbose=False)[0])
    test: dict[str, float] = {}
    if cfg.get("test", True):
        test = to_floats(trainer.test(task, datamodule=datamodule, ckpt_path=best, verbose=False)[0])
    fields.update(best_val=best_val, test=test, world_size=trainer.world_size)
    if extensions:
        fields["lr_schedule_extensions"] = extensions
    # What the data checks found (duplicates within and across splits), for tools and people.
    fields["data_checks"] = getattr(datamodule, "data_checks", None) or {}
    # Training options that change what the numbers mean (EMA weights tested, weighted loss, TTA).
    fields["ema_decay"] = cfg.model.get("ema_decay")
    fields["class_weights"] = getattr(task, "class_weights_info", None)
    fields["test_tta"] = cfg.model.get("test_tta", "none")
    if getattr(task, "test_per_class_ap", None) is not None:  # detection: AP, P, R, F1 per class
        fields["test_per_class_ap"] = task.test_per_class_ap
    fields.update(getattr(task, "lr_scaling_info", None) or {})
    session.after_run(lambda summary: _finish_loggers(trainer, summary))
    session.after_run(lambda summary: release_ddp_launch(trainer))
    return fields


def _schedule_extensions(trainer: Any) -> list[dict[str, Any]]:
    """Re-plans of the LR schedule (a run extended with more epochs), as the checkpoints keep them."""
    out: list[dict[str, Any]] = []
    for config in trainer.lr_scheduler_configs:
        lambdas = getattr(config.scheduler, "lr_lambdas", None) or [None]
        out += getattr(lambdas[0], "extensions", None) or []
    return out


def _early_stopping(trainer: Any) -> Any:
    from lightning.pytorch.callbacks import EarlyStopping

    return next((c for c in trainer.callbacks if isinstance(c, EarlyStopping)), None)


def _tell_early_stop(cb: Any, ckpt_cb: Any) -> None:
    """Early stopping ended the run: one line (Lightning says so only in its log, if at all).

    The best named is the checkpoint callback's (over the run's lineage), the one the summary
    records; early stopping's own best moves only by more than min_delta."""
    import logging

    from litvision.utils.warn import tell_user

    reason = getattr(cb, "stopping_reason", None)
    if cb is None or reason is None or reason.name == "NOT_STOPPED":
        return
    if reason.name == "PATIENCE_EXHAUSTED":
        delta = f" by more than {abs(cb.min_delta):g}" if cb.min_delta else ""
        why = f"{cb.monitor} did not improve{delta} in the last {cb.wait_count} validations (patience {cb.patience})"
    else:
        why = (cb.stopping_reason_message or reason.name.lower()).replace(" Signaling Trainer to stop.", "")
    best = getattr(ckpt_cb, "best_model_score", None)
    if best is not None:
        why += f"; best {cb.monitor} {float(best):.4g}"
    tell_user(logging.getLogger(__name__), f"early stopping ended the run at epoch {cb.stopped_epoch}: {why}")


def _tell_no_validation(trainer: Any, ckpt_cb: Any, monitor: str | None) -> None:
    """Training ended before its first validation (max_steps, a time limit, a tiny epoch): one note."""
    import logging

    from litvision.utils.warn import tell_user

    if (
        not monitor
        or monitor in trainer.callback_metrics
        or (ckpt_cb is not None and ckpt_cb.best_model_path)
    ):
        return
    tell_user(
        logging.getLogger(__name__),
        f"training ended at step {trainer.global_step}, before its first validation: no {monitor} to stop "
        "early on or to pick a best checkpoint by; the last state is tested",
    )


def _finish_loggers(trainer: Any, summary: dict[str, Any]) -> None:
    from litvision.tracking.finish import finish_trackers

    finish_trackers(trainer.loggers, summary)


#: `litvision fit`: a new run folder (or the run it resumes), configs/train.yaml.
COMMAND = Command("fit", "train", run)
