"""Pre-flight checks: the keys people change most, typed and ranged, before any run folder exists.

Hydra composes `trainer.max_epochs=abc` or `data.batch_size=0` without complaint; Lightning or
the DataLoader would fail on them seconds later, after the run folder was made. Each rule here
names the key, the value given and an example of a good one. Keys a config does not have (a
detection experiment has no `data.val_fraction`) are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from litvision.errors import UserError

PRECISIONS = (
    "64", "64-true", "32", "32-true", "16", "16-mixed", "bf16", "bf16-mixed", "16-true", "bf16-true",
    "transformer-engine", "transformer-engine-float16",
)  # fmt: skip


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class Rule:
    key: str
    ok: Callable[[Any], bool]
    expect: str
    example: str
    nullable: bool = False


def _devices_ok(v: Any) -> bool:
    if _is_int(v):
        return v >= 1 or v == -1
    if isinstance(v, str):
        s = v.strip()
        if s in ("auto", "-1"):
            return True
        if "," not in s:  # Lightning reads "4" as a count, "1," as the id list [1]
            return s.isdigit() and int(s) >= 1
        parts = [p.strip() for p in s.split(",") if p.strip()]
        return bool(parts) and all(p.isdigit() for p in parts)
    if isinstance(v, (list, tuple)) or OmegaConf.is_list(v):
        return len(v) > 0 and all(_is_int(x) and x >= 0 for x in v)
    return False


def _image_size_ok(v: Any) -> bool:
    # The forms detection_transforms reads (data/transforms/detection.py): a square side, [height, width],
    # or R-CNN's {min_size, max_size} (COCO/VOC detection configs use the last).
    if _is_int(v):
        return v >= 1
    if isinstance(v, (list, tuple)) or OmegaConf.is_list(v):
        return len(v) == 2 and all(_is_int(x) and x >= 1 for x in v)
    if isinstance(v, dict) or OmegaConf.is_dict(v):
        lo, hi = v.get("min_size"), v.get("max_size")
        return (
            set(v) <= {"min_size", "max_size"}
            and _is_int(lo)
            and lo >= 1
            and (hi is None or (_is_int(hi) and hi >= lo))
        )
    return False


def _limit_ok(v: Any) -> bool:
    # Lightning: an int is a number of batches, a float a fraction of the loader.
    if _is_int(v):
        return v >= 0
    return isinstance(v, float) and 0.0 <= v <= 1.0


RULES: tuple[Rule, ...] = (
    Rule("seed", _is_int, "a whole number", "seed=42"),
    Rule(
        "trainer.max_epochs",
        lambda v: _is_int(v) and v >= -1,
        "a whole number >= 1 (-1: no limit)",
        "trainer.max_epochs=20",
        nullable=True,
    ),
    Rule(
        "trainer.min_epochs",
        lambda v: _is_int(v) and v >= 0,
        "a whole number >= 0",
        "trainer.min_epochs=1",
        nullable=True,
    ),
    Rule(
        "trainer.max_steps",
        lambda v: _is_int(v) and v >= -1,
        "a whole number (-1: no limit)",
        "trainer.max_steps=1000",
    ),
    Rule(
        "trainer.devices",
        _devices_ok,
        "a device count >= 1, -1, 'auto' or a list of device ids",
        "trainer.devices=2",
    ),
    Rule("trainer.num_nodes", lambda v: _is_int(v) and v >= 1, "a whole number >= 1", "trainer.num_nodes=2"),
    Rule(
        "trainer.precision",
        lambda v: str(v) in PRECISIONS,
        f"one of {', '.join(PRECISIONS[:10])}",
        "trainer.precision=bf16-mixed",
    ),
    Rule(
        "trainer.accumulate_grad_batches",
        lambda v: _is_int(v) and v >= 1,
        "a whole number >= 1",
        "trainer.accumulate_grad_batches=4",
    ),
    Rule(
        "trainer.gradient_clip_val",
        lambda v: _is_number(v) and v >= 0,
        "a number >= 0 or null",
        "trainer.gradient_clip_val=1.0",
        nullable=True,
    ),
    Rule(
        "trainer.check_val_every_n_epoch",
        lambda v: _is_int(v) and v >= 1,
        "a whole number >= 1",
        "trainer.check_val_every_n_epoch=1",
        nullable=True,
    ),
    Rule(
        "trainer.log_every_n_steps",
        lambda v: _is_int(v) and v >= 1,
        "a whole number >= 1",
        "trainer.log_every_n_steps=10",
    ),
    *(
        Rule(
            f"trainer.limit_{stage}_batches",
            _limit_ok,
            "a batch count >= 0 or a fraction in [0, 1]",
            f"trainer.limit_{stage}_batches=10",
            nullable=True,
        )
        for stage in ("train", "val", "test", "predict")
    ),
    Rule("data.batch_size", lambda v: _is_int(v) and v >= 1, "a whole number >= 1", "data.batch_size=64"),
    Rule("data.num_workers", lambda v: _is_int(v) and v >= 0, "a whole number >= 0", "data.num_workers=4"),
    Rule(
        "data.val_fraction",
        lambda v: _is_number(v) and 0 <= v < 1,
        "a fraction in [0, 1)",
        "data.val_fraction=0.1",
        nullable=True,
    ),
    Rule(
        "data.test_fraction",
        lambda v: _is_number(v) and 0 <= v < 1,
        "a fraction in [0, 1)",
        "data.test_fraction=0.2",
        nullable=True,
    ),
    Rule(
        "data.image_size",
        _image_size_ok,
        "a whole number of pixels >= 1, [height, width] or {min_size: 800, max_size: 1333}",
        "data.image_size=224",
        nullable=True,
    ),
    Rule("model.optimizer.lr", lambda v: _is_number(v) and v > 0, "a number > 0", "model.optimizer.lr=1e-3"),
    Rule(
        "model.optimizer.weight_decay",
        lambda v: _is_number(v) and v >= 0,
        "a number >= 0",
        "model.optimizer.weight_decay=1e-4",
    ),
    Rule(
        "model.label_smoothing",
        lambda v: _is_number(v) and 0 <= v < 1,
        "a number in [0, 1)",
        "model.label_smoothing=0.1",
    ),
    Rule(
        "model.scheduler.warmup_epochs",
        lambda v: _is_number(v) and v >= 0,
        "a number of epochs >= 0",
        "model.scheduler.warmup_epochs=1",
    ),
    Rule("monitor_mode", lambda v: v in ("min", "max"), "min or max", "monitor_mode=max"),
    Rule(
        "scale_lr",
        lambda v: v in ("linear", "sqrt"),
        "linear, sqrt or null",
        "scale_lr=linear",
        nullable=True,
    ),
    Rule(
        "base_batch_size",
        lambda v: _is_int(v) and v >= 1,
        "a whole number >= 1",
        "base_batch_size=256",
        nullable=True,
    ),
)


_ABSENT = object()


def check_values(cfg: DictConfig) -> None:
    """Every RULES key the config has must hold a value of the right type and range."""
    for rule in RULES:
        value = OmegaConf.select(cfg, rule.key, default=_ABSENT)
        if value is _ABSENT or (value is None and rule.nullable):
            continue
        if value is None or not rule.ok(value):
            raise UserError(
                f"{rule.key}={value!r} is not valid: expected {rule.expect} (e.g. {rule.example})."
            )
    for name, group in (OmegaConf.select(cfg, "model.param_groups") or {}).items():
        lr = group.get("lr") if isinstance(group, DictConfig) else None
        if lr is not None and not (_is_number(lr) and lr > 0):
            raise UserError(
                f"model.param_groups.{name}.lr={lr!r} is not valid: expected a number > 0 (e.g. 0.01)."
            )
    if cfg.get("scale_lr") and not cfg.get("base_batch_size"):
        raise UserError(
            "scale_lr needs base_batch_size (the global batch the configured lr was tuned for): "
            "e.g. scale_lr=linear base_batch_size=256."
        )


def check_writable(runs_dir: str | Path) -> None:
    """The runs folder (or its nearest existing parent) must be writable before a run starts."""
    path = Path(runs_dir).expanduser().resolve()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK) or _read_only_fs(probe):
        raise UserError(
            f"Cannot write runs to {path}: {probe} is not writable. Free or fix that folder, or "
            "write elsewhere with paths.runs_dir=<folder>."
        )


def _read_only_fs(path: Path) -> bool:
    # os.access says yes to root on a read-only mount; statvfs knows better.
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def preflight(cfg: DictConfig) -> None:
    """Everything that can be known wrong before a run folder is made."""
    from litvision.scale import check_hardware
    from litvision.tasks.options import check_training_options

    check_values(cfg)
    check_training_options(cfg)  # EMA decay, mixing strengths, class weights, TTA
    check_hardware(cfg)
    if cfg.get("paths") and cfg.paths.get("runs_dir"):
        check_writable(cfg.paths.runs_dir)
