"""One loader for every checkpoint and weights file litvision reads, and what a checkpoint says it is.

    ckpt = load_checkpoint("runs/digits_cnn/<stamp>/checkpoints/last.ckpt")   # a dict, tensors on the CPU
    check_compatible(ckpt, cfg, path)     # refuses a checkpoint of another experiment, task, net or class count

`torch.load(weights_only=True)` rebuilds only tensors, plain containers and an allow-list of
types, so a file carrying a pickle payload (an object whose `__reduce__` runs a command) is
refused instead of run: PyTorch's serialization notes warn that `weights_only=False` "can result
in arbitrary code execution" (docs.pytorch.org/docs/stable/notes/serialization.html). What
litvision writes into a checkpoint is plain: the tasks save plain hyper-parameters (`plain`),
Lightning's loops, optimizer, scheduler and callback states are dicts of numbers and tensors, and
the pre-emption callback's RNG state is tensors and tuples. `PROJECT_GLOBALS` lists the few other
types the project's own checkpoints can hold; nothing else is allow-listed.

Every checkpoint also carries `checkpoint["litvision"]` (`provenance`): the experiment, the task,
the class count, the network and the DataModule it was trained with, all plain strings and ints.
`check_compatible` compares it with the config a command is about to run.
"""

from __future__ import annotations

import pathlib
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from litvision.errors import UserError

# Types beyond torch's own weights-only allow-list that litvision's checkpoints can hold.
# A DataModule built in Python (notebooks, tests) with `root=Path(...)` records that Path in the
# checkpoint's `datamodule_hyper_parameters`; rebuilding a path runs no code.
PROJECT_GLOBALS: tuple[type, ...] = (pathlib.PosixPath, pathlib.WindowsPath)

# Where the tasks write their record of where a checkpoint came from.
PROVENANCE_KEY = "litvision"

# Task classes by the name the provenance record uses.
TASKS = {
    "classification": "litvision.tasks.classification.ClassificationTask",
    "detection": "litvision.tasks.detection.DetectionTask",
}

_NOT_CODE = (
    "litvision refuses to execute code from a checkpoint; use a checkpoint written by litvision, "
    "or re-save the weights you trust as plain tensors: torch.save(model.state_dict(), 'weights.pth')"
)


def plain(x: Any) -> Any:
    """`x` with every OmegaConf DictConfig/ListConfig inside it turned into plain dicts and lists.

    What a task saves as hyper-parameters goes into every checkpoint: plain containers load with
    `weights_only=True`, an OmegaConf `ListConfig` (e.g. `model.freeze=[layer4,fc]`) does not.
    """
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(x, (DictConfig, ListConfig)):
        return OmegaConf.to_container(x, resolve=True)
    if isinstance(x, Mapping):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [plain(v) for v in x]
    if isinstance(x, tuple):
        return tuple(plain(v) for v in x)
    return x


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(e).__name__


def _refused_global(message: str) -> str | None:
    """The type or function a weights-only load refused, from torch's error text."""
    m = (
        re.search(r"Unsupported global: GLOBAL ([\w.]+)", message)
        or re.search(r"unsupported GLOBAL ([\w.]+)", message)
        or re.search(r"Trying to call reduce for unrecognized function ([^\s,]+)", message)
    )
    return m.group(1).strip("<>") if m else None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint or weights file with `torch.load(weights_only=True)`, tensors on the CPU.

    Every failure is one `UserError` line naming the file and the fix: a missing file, a file
    that is not a PyTorch checkpoint (or is truncated or corrupt), and a file whose pickle asks
    for anything but tensors, plain containers and `PROJECT_GLOBALS` (it is never executed).
    """
    import torch

    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"Checkpoint not found: {path}; pass an existing .ckpt/.pth file.")
    if not path.is_file():
        raise UserError(f"Checkpoint {path} is a folder, not a file; pass the .ckpt file inside it.")
    try:
        with torch.serialization.safe_globals(list(PROJECT_GLOBALS)):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        message = str(e)
        what = _refused_global(message)
        if what:
            raise UserError(f"Checkpoint {path} asks to run {what}: {_NOT_CODE}.") from None
        # Garbage bytes fail as "unsupported operand" too: that is a damaged file, not code.
        raise UserError(_unreadable(path, _weights_only_reason(e))) from None
    except Exception as e:  # noqa: BLE001 - bytes that are not a checkpoint fail in any of a dozen ways
        raise UserError(_unreadable(path, e)) from None
    if not isinstance(obj, dict):
        raise UserError(
            f"Checkpoint {path} holds a {type(obj).__name__}, not a checkpoint or state dict; "
            "save a dict (Lightning's .ckpt, or torch.save(model.state_dict(), path))."
        )
    return obj


def _weights_only_reason(e: BaseException) -> BaseException:
    """The line of torch's weights-only error that says what failed (its first lines are advice)."""
    m = re.search(r"Unsupported operand \d+|WeightsUnpickler error: *(\S[^\n]*)", str(e))
    return type(e)((m.group(1) or m.group(0)) if m else "not a pickle of tensors")


def allow_project_types() -> None:
    """Let torch's default weights-only loads accept `PROJECT_GLOBALS` too, process-wide.

    Lightning loads `trainer.fit/validate/test(ckpt_path=...)` and `load_from_checkpoint` with
    torch's default (`weights_only=True` since torch 2.6) and its global allow-list: call this once
    before those, so that they accept exactly what `load_checkpoint` accepts.
    """
    import torch

    torch.serialization.add_safe_globals(list(PROJECT_GLOBALS))


def _unreadable(path: Path, e: BaseException) -> str:
    return (
        f"Checkpoint {path} is not a readable PyTorch checkpoint (truncated or corrupt: "
        f"{_first_line(e)}); pass an intact .ckpt file, e.g. a run's checkpoints/last.ckpt."
    )


# -- where a checkpoint came from --------------------------------------------------------------
def provenance(
    experiment: str | None, task: str, num_classes: int, net: Mapping[str, Any], datamodule: Any = None
) -> dict[str, Any]:
    """The plain record a task writes into each checkpoint under `checkpoint["litvision"]`."""
    dm = None if datamodule is None else f"{type(datamodule).__module__}.{type(datamodule).__qualname__}"
    return {
        "experiment": experiment,
        "task": task,
        "num_classes": int(num_classes),
        "net": str(net.get("_target_")) if net else None,
        "datamodule": dm,
    }


def task_kind(target: str | None) -> str | None:
    """'classification' / 'detection' for a task's `_target_`, None for anything else."""
    return next((kind for kind, t in TASKS.items() if t == target), None)


def checkpoint_record(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    """What a checkpoint says it is: its `litvision` record, or (older checkpoints) what its
    hyper-parameters tell; keys it cannot tell are None."""
    rec = ckpt.get(PROVENANCE_KEY)
    if isinstance(rec, Mapping):
        return dict(rec)
    hp = ckpt.get("hyper_parameters") or {}
    net = hp.get("net") if isinstance(hp.get("net"), Mapping) else {}
    # Written before the record: the task's own hyper-parameters tell, else its network's package.
    target = str(net.get("_target_", "")) if net else ""
    if "label_smoothing" in hp:
        task = "classification"
    elif (
        "class_metrics" in hp or "draw_score_thresh" in hp or target.startswith("litvision.models.detection.")
    ):
        task = "detection"
    elif target.startswith("litvision.models."):
        task = "classification"
    else:
        task = None
    return {
        "experiment": hp.get("experiment"),
        "task": task,
        "num_classes": hp.get("num_classes"),
        "net": net.get("_target_") if net else None,
        "datamodule": None,
    }


def _config_record(cfg: Any) -> dict[str, Any]:
    from omegaconf import OmegaConf

    def select(key: str) -> Any:
        try:
            return OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        except Exception:  # noqa: BLE001 - an interpolation that cannot resolve here is "unknown"
            return None

    num_classes = select("model.num_classes")
    return {
        "experiment": select("name"),
        "task": task_kind(select("model._target_")),
        "num_classes": int(num_classes) if isinstance(num_classes, int) else None,
        "net": select("model.net._target_"),
    }


def _describe(rec: Mapping[str, Any]) -> str:
    net = str(rec.get("net") or "?").rsplit(".", 1)[-1]
    classes = rec.get("num_classes")
    return (
        f"experiment '{rec.get('experiment') or '?'}' ({rec.get('task') or '?'} task, {net}, "
        f"{classes if classes is not None else '?'} classes)"
    )


def _moved(target: str | None) -> str | None:
    """A network target with the classifiers' move into `litvision.models.classification` undone, so a
    checkpoint written before it (`litvision.models.cnn.SmallCNN`) matches the config naming the new path
    (litvision.models.__init__ resolves the old paths; utils cannot import models, a higher layer)."""
    return target.replace("litvision.models.classification.", "litvision.models.", 1) if target else target


def check_compatible(ckpt: Mapping[str, Any], cfg: Any, path: str | Path) -> None:
    """Refuse, in one line naming both, a checkpoint of another experiment, task, network or class count.

    `ckpt` is what `load_checkpoint` returned; `cfg` the composed config about to resume, test or
    predict with it. What the checkpoint cannot tell (older checkpoints have no experiment name)
    is not compared.
    """
    have = checkpoint_record(ckpt)
    want = _config_record(cfg)
    have["net"], want["net"] = _moved(have.get("net")), _moved(want.get("net"))
    if not ckpt.get("state_dict") and not ckpt.get("hyper_parameters"):
        raise UserError(
            f"{path} is not a litvision checkpoint (no state_dict or hyper_parameters); "
            "pass a .ckpt from a run's checkpoints/ folder."
        )
    differing = [
        key
        for key in ("task", "experiment", "net", "num_classes")
        if have.get(key) is not None and want.get(key) is not None and have[key] != want[key]
    ]
    if differing:
        raise UserError(
            f"Checkpoint {path} is from {_describe(have)} but this run is {_describe(want)} "
            f"(they differ in {', '.join(differing)}); pass experiment={have.get('experiment') or '<its experiment>'} "
            "with it, or start a new experiment from its weights with model.net.weights=<path>."
        )
