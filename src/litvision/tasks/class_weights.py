"""Per-class loss weights: given as a list, or `auto` = inverse class frequency of the training split.

    make train EXP=<exp> ARGS="data=image_folder data.root=/data/imbalanced model.class_weights=auto"

`auto` weighs class c by n / (k * n_c) (n training images, k classes, n_c of class c),
scikit-learn's `compute_class_weight("balanced")`: a class with half the average count
counts twice as much, and the weights average to 1 over the training images. It is the
loss-side counterpart of `data.sampler=weighted`, which draws classes equally often instead;
use one of the two, not both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from litvision.errors import UserError
from litvision.tasks.options import check_class_weights


def training_labels(datamodule: Any) -> np.ndarray | None:
    """The class index of every image in the DataModule's training split (after setup)."""
    ds = getattr(datamodule, "datasets", {}).get("train")
    if ds is None:
        return None
    labels = getattr(ds, "labels", None)
    if labels is None and hasattr(ds, "tensors"):  # TensorDataset(images, labels)
        labels = ds.tensors[1]
    if labels is None:
        return None
    return np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels, dtype=np.int64)


def inverse_frequency(
    labels: np.ndarray, num_classes: int, class_names: Sequence[str] | None = None
) -> list[float]:
    counts = np.bincount(labels, minlength=num_classes)[:num_classes]
    empty = [str(class_names[i]) if class_names else str(i) for i in np.flatnonzero(counts == 0)]
    if empty:
        raise UserError(
            f"model.class_weights=auto: the training split has no images of class(es) {', '.join(empty)}; "
            "add some, or give the weights as a list."
        )
    return (len(labels) / (num_classes * counts)).astype(float).tolist()


def resolve_class_weights(
    spec: str | Sequence[float] | None, num_classes: int, datamodule: Any = None
) -> dict[str, Any] | None:
    """The weights to use and where they came from: {"mode", "weights", "counts"?}; None when off."""
    check_class_weights(spec, num_classes)
    if spec is None:
        return None
    if spec != "auto":
        return {"mode": "given", "weights": [float(w) for w in spec]}
    labels = training_labels(datamodule)
    if labels is None:
        raise UserError(
            "model.class_weights=auto needs the training split's labels, and this DataModule has none; "
            "give the weights as a list instead."
        )
    names = getattr(datamodule, "class_names", None)
    return {
        "mode": "auto",
        "weights": inverse_frequency(labels, num_classes, names),
        "counts": np.bincount(labels, minlength=num_classes)[:num_classes].tolist(),
    }
