"""Pre-flight checks: the keys people change most, typed and ranged, before any run folder exists.

Hydra composes `trainer.max_epochs=abc` or `data.batch_size=0` without complaint; Lightning or
the DataLoader would fail on them seconds later, after the run folder was made. Each rule here
names the key, the value given and an example of a good one. Keys a config does not have (a
detection experiment has no `data.val_fraction`) are skipped.

Three rules cover every key of the composed config rather than a list of them: a float must be
finite (`data.mixup_alpha=nan` would turn MixUp off silently, `=inf` swap images instead of
mixing them), and a path key (`data.root`, `paths.*`, `*_dir`, ...) must be neither empty (`''`
reads as the current folder) nor longer than the file system allows (an OSError deep in a build).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator
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


def _alpha_ok(v: Any) -> bool:
    return _is_number(v) and v >= 0


def _probability_ok(v: Any) -> bool:
    return _is_number(v) and 0 <= v <= 1


def _whole_at_least_one(v: Any) -> bool:
    return _is_int(v) and v >= 1


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
    # Batch mixing (data/transforms/mixing.py): the DataModule checks the range too, but float("abc") there
    # is a ValueError traceback, after the run folder exists.
    Rule("data.mixup_alpha", _alpha_ok, "a number >= 0 (0: no MixUp)", "data.mixup_alpha=0.2"),
    Rule("data.cutmix_alpha", _alpha_ok, "a number >= 0 (0: no CutMix)", "data.cutmix_alpha=1.0"),
    Rule("data.mix_prob", _probability_ok, "a probability in [0, 1]", "data.mix_prob=1.0"),
    Rule("data.random_erasing", _probability_ok, "a probability in [0, 1]", "data.random_erasing=0.25"),
    # `litvision tune` options (`+tune.<key>=`; litvision/tuning.py): int("abc") there failed
    # after the batch-size finder had run for seconds, in a tune folder left behind.
    Rule("tune.max_trials", _whole_at_least_one, "a whole number >= 1", "+tune.max_trials=6"),
    Rule("tune.steps_per_trial", _whole_at_least_one, "a whole number >= 1", "+tune.steps_per_trial=3"),
    Rule("tune.num_training", _whole_at_least_one, "a whole number >= 1", "+tune.num_training=100"),
    Rule("tune.min_lr", lambda v: _is_number(v) and v > 0, "a number > 0", "+tune.min_lr=1e-7"),
    Rule("tune.max_lr", lambda v: _is_number(v) and v > 0, "a number > 0", "+tune.max_lr=1.0"),
    Rule("tune.batch_size", lambda v: isinstance(v, bool), "true or false", "+tune.batch_size=false"),
    Rule("tune.lr_find", lambda v: isinstance(v, bool), "true or false", "+tune.lr_find=false"),
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


_RULE_OF = {rule.key: rule for rule in RULES}


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf of a plain container; list items as key[i]."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, f"{prefix}[{i}]")
    else:
        yield prefix, node


def _plain(cfg: DictConfig) -> Any:
    """The config as plain containers, resolved where it resolves (a sweep's first job is checked
    before its interpolations are); what does not resolve stays its `${...}` text."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except OmegaConfBaseException:
        return OmegaConf.to_container(cfg, resolve=False, throw_on_missing=False)


def _range_of(key: str) -> str:
    rule = _RULE_OF.get(key)
    return f"{rule.expect}, e.g. {rule.example}" if rule else "a finite number"


def check_finite(cfg: DictConfig) -> None:
    """One rule for every float of the config: NaN and inf mean nothing as a setting.

    Hydra reads `nan`, `inf` and `-inf` as floats, and most range checks let them through
    (`nan < 0` is False, `inf > 0` True), so one walk over the config refuses them all.
    """
    for key, value in _leaves(_plain(cfg)):
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(
                f"{key}={value} is not a finite number, and NaN or infinity means nothing as a setting: "
                f"expected {_range_of(key)}."
            )


# Keys that name a file or folder: the last part is a path word (`root`, `dir`, `path`, `file`,
# `input`) or ends in one (`test_dir`, `save_dir`, `dirpath`, `ckpt_path`, `pretrained_file`).
_PATH_KEY = re.compile(r"(^|\.)(input|\w*(root|dir|dirpath|path|file))$")
# An empty value there reads as the current folder (`data.root=` scanned `.` for classes); the
# one path key where an empty value means "none" is ckpt_path (value_of in lifecycle/runner.py).
_EMPTY_MEANS_NONE = {"ckpt_path"}


def _name_max(path: str) -> tuple[int, int]:
    """(longest name, longest path) the file system holding `path` (or its nearest existing
    parent) allows; POSIX pathconf, with Linux's 255 and 4096 where it cannot say."""
    probe = Path(path).expanduser()
    while probe != probe.parent and not os.path.isdir(probe):  # isdir: False, not OSError, if too long
        probe = probe.parent
    try:
        return os.pathconf(probe, "PC_NAME_MAX"), os.pathconf(probe, "PC_PATH_MAX")
    except (OSError, ValueError):
        return 255, 4096


def check_paths(cfg: DictConfig) -> None:
    """Path keys: not empty (reads as `.`) and not longer than the file system allows."""
    for key, value in _leaves(_plain(cfg)):
        if not isinstance(value, str) or not _PATH_KEY.search(key) or value == "???" or "${" in value:
            continue
        if not value.strip():
            if key in _EMPTY_MEANS_NONE:
                continue
            raise UserError(
                f"{key} is empty, which reads as the current folder; give the path it names "
                f"(e.g. {key}=/data/my_photos) or leave the key out for its default."
            )
        name_max, path_max = _name_max(value)
        longest = max(Path(value).parts, key=len, default="")
        if len(os.fsencode(longest)) > name_max or len(os.fsencode(value)) >= path_max:
            raise UserError(
                f"{key} is {len(value)} characters long, with a name of {len(longest)} characters: the "
                f"file system allows at most {name_max} per name and {path_max - 1} in all; "
                "give the real path."
            )


def check_values(cfg: DictConfig) -> None:
    """Every float finite, path keys usable, and every RULES key the config has of the right
    type and range; k-fold settings consistent."""
    check_finite(cfg)
    check_paths(cfg)
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
    data = cfg.get("data")
    if isinstance(data, DictConfig) and ("num_folds" in data or "fold" in data):
        from litvision.data.pipeline.splits import check_folds

        # Here rather than in the DataModule's constructor: before the run folder exists. Whether
        # the folds fit the class sizes needs the data: train_val_split checks it at setup.
        check_folds(data.get("num_folds"), data.get("fold"))
    if cfg.get("scale_lr") and not cfg.get("base_batch_size"):
        raise UserError(
            "scale_lr needs base_batch_size (the global batch the configured lr was tuned for): "
            "e.g. scale_lr=linear base_batch_size=256."
        )


def unwritable(path: str | Path) -> Path | None:
    """None if `path` can be made or written; else the existing folder or file that stops it (the
    nearest existing parent: a file in the way, a read-only folder or file system)."""
    probe = Path(path).expanduser().resolve()
    while not os.path.lexists(probe) and probe != probe.parent:  # False, not OSError, when too long
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK) or _read_only_fs(probe):
        return probe
    return None


def check_writable(runs_dir: str | Path) -> None:
    """The runs folder (or its nearest existing parent) must be writable before a run starts."""
    path = Path(runs_dir).expanduser().resolve()
    probe = unwritable(path)
    if probe is not None:
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
    from litvision.hardware import check_hardware
    from litvision.tasks.options import check_training_options

    check_values(cfg)
    check_training_options(cfg)  # EMA decay, mixing strengths, class weights, TTA
    check_hardware(cfg)
    from litvision.data.pipeline.choose import explain
    from litvision.lifecycle.fits import check_model_fits_data

    check_model_fits_data(cfg)  # size, channels and classes the model can learn from

    chosen = explain(cfg)
    if chosen and cfg.get("train", True):
        print(chosen)
    if cfg.get("paths") and cfg.paths.get("runs_dir"):
        check_writable(cfg.paths.runs_dir)
    check_logger_stores(cfg)


def check_logger_stores(cfg: DictConfig) -> None:
    """An MLflow logger's tracking store (its tracking_uri, else MLFLOW_TRACKING_URI) must be usable."""
    loggers = cfg.get("logger")
    if not isinstance(loggers, DictConfig):
        return
    for name, logger in loggers.items():
        if not isinstance(logger, DictConfig) or not str(logger.get("_target_", "")).endswith("MLFlowLogger"):
            continue
        from litvision.tracking.mlflow_store import check_store

        uri = logger.get("tracking_uri")
        if uri:
            check_store(uri, f"logger.{name}.tracking_uri")
        else:
            check_store(os.environ.get("MLFLOW_TRACKING_URI"), "MLFLOW_TRACKING_URI")
