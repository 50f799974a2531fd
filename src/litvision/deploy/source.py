"""What is exported: the checkpoint a run folder or .ckpt names, the task rebuilt from it, and the
input (size, channels) the model is exported and checked at.

The source is a run folder (its best checkpoint, from summary.json, else checkpoints/last.ckpt) or a
.ckpt file. The task is rebuilt by the one task-from-checkpoint function (litvision.tasks.restore:
the checkpoint's own hyper-parameters, no config, no download), and the preprocessing is the one
the checkpoint recorded (litvision.data.preprocessing).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litvision.errors import UserError


@dataclass
class Source:
    checkpoint: Path
    run_dir: Path | None  # the run folder holding config.yaml, when the checkpoint sits in one


# -- finding and reading the checkpoint --------------------------------------------------------
def resolve_source(source: str | Path) -> Source:
    """A run folder or a .ckpt file -> the checkpoint to export and its run folder (if any)."""
    path = Path(source).expanduser()
    if path.is_dir():
        ckpt = _run_checkpoint(path)
        return Source(ckpt, path if (path / "config.yaml").is_file() else None)
    if not path.is_file():
        raise UserError(
            f"{path} does not exist; pass a run folder (runs/<experiment>/<stamp>) or a .ckpt file."
        )
    run = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return Source(path, run if (run / "config.yaml").is_file() else None)


def _run_checkpoint(run: Path) -> Path:
    summary = run / "summary.json"
    if summary.is_file():
        try:
            best = json.loads(summary.read_text()).get("best_checkpoint")
        except (json.JSONDecodeError, AttributeError):
            best = None
        if best and Path(best).is_file():
            return Path(best)
    last = run / "checkpoints" / "last.ckpt"
    if last.is_file():
        return last
    found = sorted((run / "checkpoints").glob("*.ckpt")) if (run / "checkpoints").is_dir() else []
    if found:
        return found[-1]
    raise UserError(
        f"{run} holds no checkpoint (no best_checkpoint in summary.json, no checkpoints/*.ckpt); "
        "pass a litvision run folder or a .ckpt file."
    )


def _load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint through the project's one safe loader (weights only; a payload is refused)."""
    from litvision.utils.safe_load import load_checkpoint

    return load_checkpoint(path)


def load_task(ckpt: dict[str, Any], path: Path) -> tuple[Any, str]:
    """(task in eval mode, kind): the one task-from-checkpoint function (litvision.tasks.restore)."""
    from litvision.tasks.restore import load_task as restore

    return restore(ckpt, path)


def inference_net(task: Any) -> Any:
    """The network whose weights serve predictions (the one place to route EMA weights through)."""
    return task.net


# -- the input the model is exported and checked with ------------------------------------------
def _run_config(run_dir: Path | None) -> Any:
    if run_dir is None:
        return None
    from omegaconf import OmegaConf

    try:
        return OmegaConf.load(run_dir / "config.yaml")
    except Exception:  # an unreadable config only loses a fallback for the input size
        return None


def _parse_size(value: Any) -> tuple[int, int] | None:
    """int | [h, w] | {min_size, max_size} | "HxW" -> (h, w)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value, value
    if isinstance(value, str):
        parts = value.lower().replace(",", "x").split("x")
        if all(p.strip().isdigit() for p in parts) and len(parts) in (1, 2):
            h, w = int(parts[0]), int(parts[-1])
            return h, w
        raise UserError(f"--image-size={value!r} is not understood; give one side (224) or HxW (480x640).")
    if isinstance(value, dict) or hasattr(value, "keys"):
        side = value.get("min_size")
        return (int(side), int(side)) if side is not None else None
    if isinstance(value, (list, tuple)) or hasattr(value, "__len__"):
        items = list(value)
        if len(items) == 2:
            return int(items[0]), int(items[1])
    return None


def input_size(ckpt: dict[str, Any], run_cfg: Any, override: Any = None, pre: Any = None) -> tuple[int, int]:
    """(H, W) the model is exported at: --image-size, else what the data fed it in training.

    A classifier's is its recorded preprocessing (`pre`); a detector's the DataModule's
    image_size in the checkpoint, then the network's own input size (YOLOv1 image_size, a
    torchvision detector's min_size), then the run's config.
    """
    size = _parse_size(override)
    if size:
        return size
    if pre is not None and pre.size:
        return pre.size
    dm_hp = ckpt.get("datamodule_hyper_parameters") or {}
    net = (ckpt.get("hyper_parameters") or {}).get("net") or {}
    for value in (dm_hp.get("image_size"), net.get("image_size"), net.get("img_size")):
        size = _parse_size(value)
        if size:
            return size
    data = run_cfg.get("data", {}) if run_cfg is not None else {}
    for value in (data.get("image_size"), net.get("min_size")):
        try:
            size = _parse_size(value)
        except UserError:
            size = None
        if size:
            return size
    raise UserError(
        "cannot tell the input size this model was trained at (no data.image_size in the checkpoint "
        "or its run's config.yaml); pass --image-size H or HxW."
    )
