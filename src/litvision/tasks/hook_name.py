"""The tasks' `_current_fx_name` is set without nn.Module's attribute checks.

Lightning records which hook is running on the LightningModule itself: every hook call through the
Trainer (`trainer/call.py`: the module's, the callbacks' and the strategy's hooks) sets
`pl_module._current_fx_name` before and after the call, about 44 assignments per training step.
Each goes through `torch.nn.Module.__setattr__`, which checks whether the value is a Parameter, a
Module or a buffer (two metaclass `isinstance` checks in Python) before storing a plain attribute:
~2-5 us each, the largest single item of the step's overhead on a small network
(`python -m bench step_overhead`). The name is always a string or None, never a parameter, module or
buffer, so nn.Module would store it with `object.__setattr__` in the end; here it goes there directly
(as Lightning's own `_ResultMetric.__setattr__` does for its attributes, "performance: skip the
`torch.nn.Module.__setattr__` checks"). Every other attribute takes nn.Module's path as before.
"""

from __future__ import annotations

from typing import Any


class DirectHookName:
    """Mixin for a LightningModule (put it first among the bases)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)
