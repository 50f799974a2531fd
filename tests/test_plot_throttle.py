"""Per-epoch figures (history.png, the val confusion matrix, the detections shown) take at most a
share of a run's wall time (utils/media.py Throttle), and the last epoch's are always drawn at the
end of fit: a 30-epoch digits_cnn run spent half its time in matplotlib before."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import compose_cfg

from litvision.utils.media import Throttle


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_job_is_due_again_after_nine_times_what_it_took_at_a_tenth() -> None:
    """Catches the share inverted (due after a tenth of the cost), the cost measured from the wrong
    end, or the first job not due."""
    clock = Clock()
    throttle = Throttle(share=0.1, clock=clock)
    assert throttle.due()

    def job() -> str:
        clock.now += 2.0  # the drawing takes 2 s
        return "drawn"

    assert throttle.timed(job) == "drawn"
    clock.now += 17.9
    assert not throttle.due()
    clock.now += 0.1  # 18 s after it ended: 2 s is a tenth of the 20 s since it started
    assert throttle.due()


def test_a_failed_job_still_plans_the_next() -> None:
    clock = Clock()
    throttle = Throttle(share=0.5, clock=clock)

    def job() -> None:
        clock.now += 1.0
        raise OSError("disk full")

    with pytest.raises(OSError):
        throttle.timed(job)
    assert not throttle.due()
    clock.now += 1.0
    assert throttle.due()


def test_a_run_whose_figures_are_never_due_again_still_ends_with_its_last_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a share so small that only the first epoch is drawn during training, the end of fit
    draws the last one: TensorBoard holds the val confusion matrix at the first and at the last
    validation's step, and history.png is written after the last checkpoint.
    Catches: the task's on_fit_end flush dropped, the callback's on_fit_end dropped, the pending
    figure forgotten when an epoch is not due."""
    import litvision.utils.media as media
    from litvision.train import train

    monkeypatch.setattr(media, "PLOT_TIME_SHARE", 1e-9)
    steps_per_epoch, epochs = 2, 4
    cfg = compose_cfg(
        [
            "experiment=digits_cnn",
            f"trainer.max_epochs={epochs}",
            f"++trainer.limit_train_batches={steps_per_epoch}",
            "++trainer.limit_val_batches=1",
            "++trainer.limit_test_batches=1",
            "trainer.num_sanity_val_steps=0",
            "callbacks.early_stopping=null",
            "callbacks.rich_progress_bar=null",
            "logger=tensorboard",
        ],
        tmp_path / "runs",
    )
    run = Path(train(cfg)["run_dir"])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(
        str(next(run.rglob("events.out.tfevents*")).parent), size_guidance={"images": 0}
    )
    events.Reload()
    steps = [e.step for e in events.Images("val/confusion_matrix")]
    assert steps == [steps_per_epoch, steps_per_epoch * epochs], steps
    assert (run / "history.png").stat().st_mtime_ns >= (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns
