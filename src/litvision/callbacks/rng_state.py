"""Save and restore the random number generators with each checkpoint.

Lightning checkpoints hold weights, optimizer and loop state but not the RNGs, so
dropout and augmentation after a resume would draw different numbers than the
uninterrupted run. With this callback (and samplers seeded by epoch) a resumed run
ends with bit-identical weights on the CPU.
"""

from __future__ import annotations

from typing import Any

from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning.pytorch import Callback


class RNGStateCallback(Callback):
    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        states = _collect_rng_states(include_cuda=False)
        # numpy's key array as a plain list: the checkpoint stays loadable with weights_only=True.
        kind, keys, pos, has_gauss, gauss = states["numpy"]
        states["numpy"] = (kind, keys.tolist(), pos, has_gauss, gauss)
        return {"rng": states}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        import numpy as np

        states = dict(state_dict.get("rng") or {})
        if "numpy" in states:
            kind, keys, pos, has_gauss, gauss = states["numpy"]
            states["numpy"] = (kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss)
        self._pending = states or None

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        # Restore as late as possible: anything between loading the checkpoint and the
        # first batch (sanity checks, dataloader set-up) must not shift the streams.
        if self._pending is not None:
            _set_rng_states(self._pending)
            self._pending = None
