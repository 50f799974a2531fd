"""A task from a checkpoint alone: the network its plain hyper-parameters describe (pretrained-weight
keys off: the checkpoint holds every tensor, nothing is downloaded), its weights, and the preprocessing of
single images its DataModule recorded (`datamodule_hyper_parameters`). What predict uses; a `_target_`
in a checkpoint is data, so only litvision's own networks and DataModules are rebuilt from it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from litvision.errors import UserError

# Only networks of the project are rebuilt from a checkpoint's hyper-parameters: a `_target_` in a
# checkpoint is data, and instantiating anything it names would be code execution by other means.
NET_TARGET_PREFIX = "litvision.models."
DATA_TARGET_PREFIX = "litvision.data."


def _check_targets(obj: Any, prefix: str, path: Path, where: str) -> None:
    """Every `_target_` inside `obj` (Hydra instantiates nested ones too) must start with `prefix`."""
    if isinstance(obj, Mapping):
        target = obj.get("_target_")
        if target is not None and not str(target).startswith(prefix):
            raise UserError(
                f"Checkpoint {path} names {target!r} as its {where}; predict rebuilds only litvision's "
                f"own ({prefix}*) and refuses to run anything else from a checkpoint."
            )
        for v in obj.values():
            _check_targets(v, prefix, path, where)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _check_targets(v, prefix, path, where)


def _task_class(kind: str) -> type:
    if kind == "classification":
        from litvision.tasks.classification import ClassificationTask

        return ClassificationTask
    from litvision.tasks.detection import DetectionTask

    return DetectionTask


def load_task(ckpt: Mapping[str, Any], path: Path, cfg: DictConfig) -> tuple[Any, str]:
    """(the task in eval mode with the checkpoint's weights, "classification" | "detection")."""
    from litvision.models.weights import without_pretrained
    from litvision.utils.safe_load import checkpoint_record, task_kind

    hp = ckpt.get("hyper_parameters")
    if not isinstance(hp, Mapping) or not isinstance(hp.get("net"), Mapping) or "num_classes" not in hp:
        raise UserError(
            f"Checkpoint {path} is not a litvision task checkpoint (no net/num_classes hyper-parameters); "
            "pass a .ckpt from a run's checkpoints/ folder."
        )
    if not isinstance(ckpt.get("state_dict"), Mapping):
        raise UserError(
            f"Checkpoint {path} has no state_dict (weights); pass a .ckpt from a run's checkpoints/ folder."
        )
    kind = checkpoint_record(ckpt).get("task") or task_kind(cfg.model.get("_target_"))
    if kind not in ("classification", "detection"):
        raise UserError(
            f"Cannot tell whether checkpoint {path} is a classification or a detection model; "
            "pass the experiment it was trained with (experiment=<name>)."
        )
    _check_targets(hp["net"], NET_TARGET_PREFIX, path, "network")
    cls = _task_class(kind)
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    # The checkpoint holds every tensor: rebuilding the network must not fetch pretrained weights.
    kwargs = {k: v for k, v in hp.items() if k in accepted}
    kwargs["net"] = without_pretrained(hp["net"])
    task = cls(**kwargs)
    try:
        task.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
        raise UserError(
            f"Checkpoint {path}: its weights do not fit the network its own hyper-parameters describe "
            f"({first[:200]}); the file was changed after training, pass an unmodified checkpoint."
        ) from None
    return task.eval(), kind


def _datamodule_class(ckpt: Mapping[str, Any], cfg: DictConfig, path: Path) -> type:
    from hydra.utils import get_class

    from litvision.utils.safe_load import checkpoint_record

    recorded = checkpoint_record(ckpt).get("datamodule")
    if recorded and not str(recorded).startswith(DATA_TARGET_PREFIX):
        raise UserError(
            f"Checkpoint {path} names {recorded!r} as its data; predict uses only litvision's own "
            f"({DATA_TARGET_PREFIX}*) data modules."
        )
    target = recorded or cfg.data.get("_target_")
    cls = get_class(str(target))
    if not hasattr(cls, "inference_transform"):
        raise UserError(
            f"{target} cannot prepare single images for a model (no inference_transform); "
            "predict supports litvision's classification data modules."
        )
    return cls


def inference_transform(ckpt: Mapping[str, Any], cfg: DictConfig, path: Path) -> Callable[[Any], Any]:
    """The eval-time preprocessing of one image the checkpoint's model was trained with."""
    from omegaconf import OmegaConf

    cls = _datamodule_class(ckpt, cfg, path)
    hparams = ckpt.get("datamodule_hyper_parameters")
    if not isinstance(hparams, Mapping):
        # Not recorded in the checkpoint: the experiment's data settings.
        hparams = {k: v for k, v in OmegaConf.to_container(cfg.data, resolve=True).items() if k != "_target_"}
    return cls.inference_transform(hparams)
