"""Checks of the training options a task and its DataModule take, in plain Python (no torch).

`check_training_options(cfg)` runs every check on a composed config, so a command line can
refuse bad values in one line before any run folder exists; the constructors run the same
checks, so code that builds a task or DataModule directly gets the same errors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from litvision.errors import UserError

TTA_MODES = ("none", "hflip")


def check_ema_decay(decay: float | None) -> None:
    if decay is None:
        return
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 < float(decay) < 1.0:
        raise UserError(
            f"model.ema_decay={decay} must be in (0, 1), e.g. 0.999 (larger = slower average), or null for no EMA."
        )


def check_class_weights(spec: str | Sequence[float] | None, num_classes: int | None) -> None:
    if spec is None or spec == "auto":
        return
    if isinstance(spec, str):
        raise UserError(f"model.class_weights={spec!r} must be auto, null or a list of one weight per class.")
    weights = list(spec)
    if num_classes is not None and len(weights) != num_classes:
        raise UserError(
            f"model.class_weights has {len(weights)} values but there are {num_classes} classes; "
            f"give one weight per class (or class_weights=auto)."
        )
    bad = [w for w in weights if not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0]
    if bad or not any(w > 0 for w in weights):
        raise UserError(
            f"model.class_weights={weights} must be finite numbers >= 0, at least one of them > 0."
        )


def check_tta(mode: str | None) -> None:
    if (mode or "none") not in TTA_MODES:
        raise UserError(f"test_tta={mode!r} is not one of {list(TTA_MODES)}; pick one of those.")


def check_training_options(cfg: Mapping[str, Any]) -> None:
    """Every check above, and the DataModule's mixing checks, on a composed config."""
    from litvision.data.transforms.mixing import check_mixing

    model = cfg.get("model") or {}
    data = cfg.get("data") or {}
    check_ema_decay(model.get("ema_decay"))
    check_class_weights(model.get("class_weights"), model.get("num_classes"))
    check_tta(model.get("test_tta", cfg.get("test_tta")))
    mixing = {
        k: data.get(k) for k in ("mixup_alpha", "cutmix_alpha", "mix_prob", "random_erasing") if k in data
    }
    check_mixing(**mixing)
