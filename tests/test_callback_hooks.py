"""Callbacks' empty per-batch hooks are not dispatched (utils/callback_hooks.py), and what the callbacks do
at a batch is unchanged: the hooks a callback overrides still run at every batch, the others are
never called, and Lightning's own batch-end checkpoint (`every_n_train_steps`) still saves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import compose_cfg


class _Tiny:
    """A two-parameter LightningModule on random data: 6 training and 2 validation batches."""

    @staticmethod
    def module() -> Any:
        import lightning as L

        class Tiny(L.LightningModule):
            def __init__(self) -> None:
                super().__init__()
                self.layer = torch.nn.Linear(4, 2)

            def training_step(self, batch: Any, batch_idx: int) -> Any:
                return torch.nn.functional.cross_entropy(self.layer(batch[0]), batch[1])

            def validation_step(self, batch: Any, batch_idx: int) -> None:
                self.log("val/loss", torch.nn.functional.cross_entropy(self.layer(batch[0]), batch[1]))

            def configure_optimizers(self) -> Any:
                return torch.optim.SGD(self.parameters(), lr=0.1)

        return Tiny()

    @staticmethod
    def loader(n: int) -> Any:
        from torch.utils.data import DataLoader, TensorDataset

        return DataLoader(TensorDataset(torch.randn(2 * n, 4), torch.randint(0, 2, (2 * n,))), batch_size=2)


def test_default_callbacks_keep_only_the_batch_hooks_they_override(tmp_path: Path) -> None:
    """Every per-batch hook of every default callback is either its class's own or None.
    Breaks if the pruning is dropped (the base class's empty hooks left in place) or if it also
    removes a hook the class overrides (e.g. the checkpoint's or the history's batch end)."""
    from lightning.pytorch import Callback

    from litvision.build import build_callbacks
    from litvision.utils.callback_hooks import BATCH_HOOKS

    cfg = compose_cfg(["experiment=digits_cnn"], tmp_path)
    callbacks = build_callbacks(cfg)
    assert len(callbacks) >= 6
    for cb in callbacks:
        for hook in BATCH_HOOKS:
            overridden = getattr(type(cb), hook) is not getattr(Callback, hook)
            assert (getattr(cb, hook) is None) != overridden, (type(cb).__name__, hook)
    names = {type(cb).__name__: cb for cb in callbacks}
    assert callable(names["ModelCheckpoint"].on_train_batch_end)
    assert callable(names["EpochHistory"].on_train_batch_end)
    assert callable(names["PreemptionCheckpoint"].on_train_batch_end)
    assert names["EpochHistory"].on_before_backward is None


def test_pruned_callback_runs_its_own_hooks_and_never_the_empty_ones(tmp_path: Path) -> None:
    """A callback overriding two batch hooks, pruned, in a real fit: both run at every batch (6 train,
    2 x 2 validation), and the trainer calls nothing else of it per batch."""
    import lightning as L
    from lightning.pytorch import Callback

    from litvision.utils.callback_hooks import BATCH_HOOKS, skip_empty_batch_hooks

    class Counting(Callback):
        def __init__(self) -> None:
            self.calls: dict[str, int] = {}

        def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
            self.calls["on_train_batch_end"] = self.calls.get("on_train_batch_end", 0) + 1

        def on_validation_batch_start(self, trainer: Any, pl_module: Any, *args: Any) -> None:
            self.calls["on_validation_batch_start"] = self.calls.get("on_validation_batch_start", 0) + 1

    cb = Counting()
    (same,) = skip_empty_batch_hooks([cb])
    assert same is cb
    assert [h for h in BATCH_HOOKS if getattr(cb, h) is not None] == [
        "on_train_batch_end",
        "on_validation_batch_start",
    ]
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=2,
        default_root_dir=tmp_path,
        callbacks=[cb],
    )
    trainer.fit(_Tiny.module(), _Tiny.loader(6), _Tiny.loader(2))
    assert cb.calls == {"on_train_batch_end": 6, "on_validation_batch_start": 4}


def test_ema_callback_keeps_its_batch_end(tmp_path: Path) -> None:
    """The task-made EMA callback is pruned too, and keeps the hook that updates the average."""
    from litvision.tasks.ema import EMA

    ema = EMA(0.9)
    assert callable(ema.on_train_batch_end)
    assert ema.on_before_backward is None and ema.on_train_batch_start is None


@pytest.mark.parametrize("every_n", [None, 2])
def test_checkpoint_every_n_train_steps_still_saves_at_batch_end(tmp_path: Path, every_n: int | None) -> None:
    """litvision's ModelCheckpoint asks Lightning's batch-end save only when `every_n_train_steps` or
    `train_time_interval` is set: with every_n_train_steps=2 over 6 steps, steps 2, 4 and 6 are saved
    at batch ends; without it, only the epoch's end (step 6). Breaks if the short cut skips a save."""
    import lightning as L

    from litvision.callbacks.checkpoint import ModelCheckpoint

    ckpt = ModelCheckpoint(
        dirpath=tmp_path / "ckpt",
        filename="{step}",
        monitor=None,
        save_top_k=-1,
        save_last=False,
        every_n_train_steps=every_n,
    )
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=tmp_path,
        callbacks=[ckpt],
    )
    trainer.fit(_Tiny.module(), _Tiny.loader(6))
    saved = sorted(p.name for p in (tmp_path / "ckpt").glob("*.ckpt"))
    assert saved == (["step=2.ckpt", "step=4.ckpt", "step=6.ckpt"] if every_n else ["step=6.ckpt"])
    # Nothing to do at a batch's end without every_n_train_steps (nor last_every_n_train_steps): the
    # hook was skipped for the run; with it, kept.
    assert (ckpt.on_train_batch_end is None) == (every_n is None)


def test_sample_grid_stops_being_called_once_done() -> None:
    """After its one grid (or with num_images=0) the sample grid's batch-start hook is None, so
    Lightning no longer calls it at every step; it still logs once, as before."""
    import lightning as L

    from litvision.callbacks.sample_grid import SampleGrid

    assert SampleGrid(num_images=0).on_train_batch_start is None
    cb = SampleGrid(num_images=2)
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    cb.on_train_batch_start(trainer, L.LightningModule(), torch.rand(2, 3, 4, 4), 0)
    assert cb.logged and cb.on_train_batch_start is None


def test_tasks_set_the_hook_name_directly_and_everything_else_through_nn_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`_current_fx_name`, which Lightning sets around every hook call, skips nn.Module.__setattr__
    (tasks/hook_name.py); a parameter, a module or any other attribute still goes through it and is
    registered as before."""
    from litvision.build import build_task
    from litvision.tasks.detection import DetectionTask
    from litvision.tasks.hook_name import DirectHookName

    assert issubclass(DetectionTask, DirectHookName)
    task = build_task(compose_cfg(["experiment=digits_cnn"], tmp_path))
    assert isinstance(task, DirectHookName)
    seen: list[str] = []
    original = torch.nn.Module.__setattr__

    def spy(self: Any, name: str, value: Any) -> None:
        if self is task:
            seen.append(name)
        original(self, name, value)

    monkeypatch.setattr(torch.nn.Module, "__setattr__", spy)
    task._current_fx_name = "training_step"
    assert task._current_fx_name == "training_step" and "_current_fx_name" in vars(task)
    task._current_fx_name = None
    assert seen == []
    task.extra_head = torch.nn.Linear(2, 2)
    task.extra_scale = torch.nn.Parameter(torch.ones(1))
    task.plain_value = 3
    assert seen == ["extra_head", "extra_scale", "plain_value"]
    assert "extra_head" in task._modules and "extra_scale" in task._parameters
