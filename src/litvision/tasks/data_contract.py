"""What a task takes from its DataModule: the class count (checked) and the class names (adopted)."""

from __future__ import annotations

from typing import Any

from litvision.errors import UserError


def adopt_data_contract(task: Any) -> Any:
    """Check `num_classes` against the DataModule and take its class names; returns the DataModule.

    Tasks write the names into their checkpoints (`on_save_checkpoint`), so predict and
    notebooks can label outputs without the dataset.
    """
    dm = getattr(task.trainer, "datamodule", None)
    data_classes = getattr(dm, "num_classes", None)
    if data_classes is not None and data_classes != task.num_classes:
        raise UserError(
            f"model.num_classes={task.num_classes} but the data has {data_classes} classes; "
            "set model.num_classes=${data.num_classes} (the default) or fix data.num_classes."
        )
    names = getattr(dm, "class_names", None)
    if names and len(names) == task.num_classes:
        task.class_names = list(names)
    return dm
