"""What is exported: the checkpoint a run folder or .ckpt names, the task rebuilt from it, and the
input (size, channels) the model is exported and checked at.

The source is a run folder (its best checkpoint, from summary.json, else checkpoints/last.ckpt) or a
.ckpt file. The task is rebuilt from the checkpoint's own hyper-parameters (no config, no download).
"""

from __future__ import annotations

import json
import warnings
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


def _hyper_parameters(ckpt: dict[str, Any], path: Path) -> dict[str, Any]:
    hp = ckpt.get("hyper_parameters")
    net = hp.get("net") if isinstance(hp, dict) else None
    if (
        not isinstance(net, dict)
        or "_target_" not in net
        or "num_classes" not in hp
        or "state_dict" not in ckpt
    ):
        raise UserError(
            f"{path} is not a litvision checkpoint (no hyper_parameters.net/num_classes or state_dict); "
            "pass a .ckpt written by `litvision train`."
        )
    return dict(hp)


def is_detection(hp: dict[str, Any]) -> bool:
    return str(hp["net"]["_target_"]).startswith("litvision.models.detection.")


def rebuild_task(ckpt: dict[str, Any], path: Path) -> Any:
    """The task (in eval mode) from the checkpoint's hyper-parameters and weights; nothing is downloaded."""
    from litvision.models.weights import without_pretrained

    hp = _hyper_parameters(ckpt, path)
    hp["net"] = without_pretrained(hp["net"])
    if is_detection(hp):
        from litvision.tasks.detection import DetectionTask as Task
    else:
        from litvision.tasks.classification import ClassificationTask as Task
    with warnings.catch_warnings():
        # Builders warn about pretrained-only options (trainable_backbone_layers) that do not apply here.
        warnings.simplefilter("ignore", UserWarning)
        task = Task(**hp)
    missing, unexpected = task.load_state_dict(ckpt["state_dict"], strict=False)
    if missing or unexpected:
        raise UserError(
            f"{path}: its weights do not fit the model its hyper-parameters describe "
            f"(missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]}); was it written by another "
            "version of litvision?"
        )
    return task.eval()


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


def input_size(ckpt: dict[str, Any], run_cfg: Any, override: Any = None) -> tuple[int, int]:
    """(H, W) the model is exported at: --image-size, else what the data fed it in training.

    Read from the DataModule's hyper-parameters in the checkpoint, then the network's own input size
    (YOLOv1 image_size, timm img_size), then a DataModule whose data fixes the size (`image_size`
    class attribute, e.g. the 8x8 digits).
    """
    size = _parse_size(override)
    if size:
        return size
    dm_hp = ckpt.get("datamodule_hyper_parameters") or {}
    net = (ckpt.get("hyper_parameters") or {}).get("net") or {}
    for value in (dm_hp.get("image_size"), net.get("image_size"), net.get("img_size")):
        size = _parse_size(value)
        if size:
            return size
    target = run_cfg.get("data", {}).get("_target_") if run_cfg is not None else None
    if target:
        import importlib

        module, _, name = str(target).rpartition(".")
        try:
            fixed = getattr(importlib.import_module(module), name).image_size
        except (ImportError, AttributeError):
            fixed = None
        if isinstance(fixed, int):
            return fixed, fixed
    raise UserError(
        "cannot tell the input size this model was trained at (no data.image_size in the checkpoint "
        "or its run's config.yaml); pass --image-size H or HxW."
    )


def in_channels(ckpt: dict[str, Any]) -> int:
    dm_hp = ckpt.get("datamodule_hyper_parameters") or {}
    net = (ckpt.get("hyper_parameters") or {}).get("net") or {}
    for value in (dm_hp.get("in_channels"), net.get("in_channels"), net.get("in_chans")):
        if isinstance(value, int) and value > 0:
            return value
    return 3
