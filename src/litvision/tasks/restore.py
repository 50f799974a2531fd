"""A task from a checkpoint alone: the network its plain hyper-parameters describe (pretrained-weight
keys off: the checkpoint holds every tensor, nothing is downloaded), its weights, and the preprocessing
of single images it recorded (litvision.data.preprocessing). The one task-from-checkpoint function:
predict, test and export call `load_task`, and `task_kind` is the one place that tells a classifier
from a detector. A `_target_` in a checkpoint is data, so only litvision's own networks and
DataModules are rebuilt from it.
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


def task_kind(ckpt: Mapping[str, Any], path: Path, cfg: DictConfig | None = None) -> str:
    """ "classification" | "detection": what the checkpoint says (utils/safe_load.checkpoint_record: its
    record, or for one written before the record its hyper-parameters and network), else the
    experiment's task. The rules are safe_load's alone: the checks before a run read the same."""
    from litvision.utils.safe_load import checkpoint_record
    from litvision.utils.safe_load import task_kind as kind_of_target

    kind = checkpoint_record(ckpt).get("task")
    if kind is None and cfg is not None:
        kind = kind_of_target(cfg.model.get("_target_"))
    if kind not in ("classification", "detection"):
        raise UserError(
            f"Cannot tell whether checkpoint {path} is a classification or a detection model; "
            "pass the experiment it was trained with (experiment=<name>)."
        )
    return kind


# What a checkpoint alone decides, whatever the experiment's config says at test time.
OWN_KEYS = ("_target_", "_recursive_", "net", "num_classes", "class_names", "experiment")


def load_task(
    ckpt: Mapping[str, Any], path: Path, cfg: DictConfig | None = None, task_options: bool = False
) -> tuple[Any, str]:
    """(the task in eval mode with the checkpoint's weights, "classification" | "detection").

    `task_options`: the experiment's task settings (`cfg.model` but the network and classes, e.g.
    test_tta, metric options) replace the checkpoint's, as `litvision test` takes them."""
    import warnings

    from litvision.models.weights import without_pretrained

    hp = ckpt.get("hyper_parameters")
    if not isinstance(hp, Mapping) or not isinstance(hp.get("net"), Mapping) or "num_classes" not in hp:
        raise UserError(
            f"Checkpoint {path} is not a litvision checkpoint (no net/num_classes hyper-parameters); "
            "pass a .ckpt from a run's checkpoints/ folder."
        )
    if not isinstance(ckpt.get("state_dict"), Mapping):
        raise UserError(
            f"Checkpoint {path} has no state_dict (weights); pass a .ckpt from a run's checkpoints/ folder."
        )
    kind = task_kind(ckpt, path, cfg)
    _check_targets(hp["net"], NET_TARGET_PREFIX, path, "network")
    cls = _task_class(kind)
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    # The checkpoint holds every tensor: rebuilding the network must not fetch pretrained weights.
    kwargs = {k: v for k, v in hp.items() if k in accepted}
    if task_options and cfg is not None:
        from omegaconf import OmegaConf

        model = OmegaConf.to_container(cfg.model, resolve=True)
        kwargs.update({k: v for k, v in model.items() if k in accepted and k not in OWN_KEYS})
    kwargs["net"] = without_pretrained(hp["net"])
    with warnings.catch_warnings():
        # Builders warn about pretrained-only options (trainable_backbone_layers) that do not apply here.
        warnings.simplefilter("ignore", UserWarning)
        task = cls(**kwargs)
    try:
        task.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
        raise UserError(
            f"Checkpoint {path}: its weights do not fit the network its own hyper-parameters describe "
            f"({first[:200]}); the file was changed after training, or written by another version of "
            "litvision: pass an unmodified checkpoint."
        ) from None
    return task.eval(), kind


def preprocessing(ckpt: Mapping[str, Any], path: Path, cfg: DictConfig | None = None) -> Any:
    """The checkpoint's recorded preprocessing (older ones: what their DataModule's settings give)."""
    from litvision.data.preprocessing import from_checkpoint
    from litvision.utils.safe_load import checkpoint_record

    kind = task_kind(ckpt, path, cfg)
    recorded = isinstance(checkpoint_record(ckpt).get("preprocessing"), Mapping)
    if recorded or cfg is None or cfg.get("data") is None:
        return from_checkpoint(ckpt, None, f"Checkpoint {path}", kind=kind)
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(cfg.data, resolve=True)
    settings = {k: v for k, v in data.items() if k != "_target_"}
    return from_checkpoint(ckpt, data.get("_target_"), f"Checkpoint {path}", settings, kind)


def inference_transform(ckpt: Mapping[str, Any], cfg: DictConfig | None, path: Path) -> Callable[[Any], Any]:
    """The eval-time preprocessing of one image the checkpoint's model was trained with."""
    return preprocessing(ckpt, path, cfg).transform()
