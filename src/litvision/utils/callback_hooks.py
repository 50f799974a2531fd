"""Per-batch callback hooks that do nothing are not dispatched.

Lightning calls every hook of every callback at every batch (`trainer/call.py:_call_callback_hooks`),
including the base class's empty ones: for each, it formats the callback's `state_key` into a
profiler action name and enters the profiler's context manager, about 2 us of CPU time per callback
and hook. A training step has six such hooks (batch start and end, before and after backward, before
the optimizer step and zero_grad); the default callbacks override one of them each, so the other
25 calls a step were pure overhead (`python -m bench step_overhead`). Lightning skips a hook that is
not callable (`if callable(fn)`), so each callback that litvision builds gets `None` as an instance
attribute for the per-batch hooks its class inherits unchanged from `Callback`: the hooks that run
are the same, and the ones skipped were the base class's `pass`.

Only the per-batch hooks, which Lightning calls through `_call_callback_hooks` alone; the others
(setup, epoch and checkpoint hooks, `state_dict`) stay as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

BATCH_HOOKS = (
    "on_train_batch_start",
    "on_train_batch_end",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "on_test_batch_start",
    "on_test_batch_end",
    "on_predict_batch_start",
    "on_predict_batch_end",
)

C = TypeVar("C", bound=Iterable[Any])


def skip_empty_batch_hooks(callbacks: C) -> C:
    """Set to None, on each callback, the per-batch hooks its class does not override (see the module
    docstring); returns `callbacks`."""
    from lightning.pytorch import Callback

    for cb in callbacks:
        if not isinstance(cb, Callback):
            continue
        for hook in BATCH_HOOKS:
            if hook not in vars(cb) and getattr(type(cb), hook, None) is getattr(Callback, hook):
                setattr(cb, hook, None)
    return callbacks
