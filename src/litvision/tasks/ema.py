"""Exponential moving average of the weights (`model.ema_decay`), via Lightning's EMAWeightAveraging.
The task adds this callback itself (`configure_callbacks`), so it lives with the tasks.

    make train EXP=resnet18_cifar10 ARGS="model.ema_decay=0.999"

Lightning's callback (`lightning.pytorch.callbacks.EMAWeightAveraging`, a
`torch.optim.swa_utils.AveragedModel` with `get_ema_avg_fn`) updates the average after
every optimizer step, swaps it in for each validation epoch and copies it into the model
when fitting ends. So model selection (`monitor`), early stopping, the best/last
checkpoints and everything tested after fit use the EMA weights.

A checkpoint written while EMA is on holds:
    state_dict            the EMA weights (what load_from_checkpoint, eval, predict and export load)
    current_model_state   the raw training weights (what training continues from)
    averaging_state       {"n_averaged": tensor}, with the callback's step counter under "callbacks"
all plain tensors and containers, so it loads with `torch.load(weights_only=True)`; resuming
restores both weight sets and the counter exactly.

Test and predict need no swap: after fit the model holds the average (Lightning copies it in at
the end of training), and `trainer.test/predict(ckpt_path=...)` load the checkpoint's `state_dict`,
the EMA weights (a swap there would put the live average of the last step in place of the best
checkpoint's). Lightning still calls the callback's `on_load_checkpoint` there, with no average
built (that happens at fit's setup): this subclass returns quietly in that case instead of
Lightning's "loading a checkpoint outside the 'fit' stage" warning, because the `state_dict` just
loaded already holds the EMA weights. Tested in tests/test_ema_callback.py.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EMAWeightAveraging

from litvision.tasks.options import check_ema_decay


class EMA(EMAWeightAveraging):
    """EMA of all parameters and buffers (BatchNorm statistics too), updated every optimizer step."""

    def __init__(self, decay: float) -> None:
        check_ema_decay(decay)
        super().__init__(decay=decay, use_buffers=True)
        # The task adds this callback itself, after build_callbacks: its empty per-batch hooks are
        # skipped here (litvision/utils/callback_hooks.py).
        from litvision.utils.callback_hooks import skip_empty_batch_hooks

        skip_empty_batch_hooks([self])

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self._average_model is None:
            return  # validate/test/predict: the model has just loaded state_dict, the EMA weights
        super().on_load_checkpoint(trainer, pl_module, checkpoint)
