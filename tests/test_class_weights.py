"""model.class_weights: auto = inverse class frequency of the training split; a list is used as given;
either weighs the loss; a list of the wrong length is one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_cfg

from litvision.data.fixtures.classification import class_images, write_image

COUNTS = {"ant": 20, "bee": 10, "cow": 5}


def _imbalanced_folder(root: Path) -> Path:
    i = 0
    for label, (name, n) in enumerate(COUNTS.items()):
        for img in class_images(np.full(n, label), 24, 24, 3, seed=label):
            write_image(root / name / f"{name}_{i:03d}.png", img)
            i += 1
    return root


def _overrides(root: Path) -> list[str]:
    return [
        "experiment=digits_cnn",
        "data=image_folder",
        f"data.root={root}",
        "data.num_workers=0",
        "data.batch_size=8",
        "data.image_size=24",
        "data.resize_size=24",
        "data.val_fraction=0.2",
        "model.net.in_channels=3",
        "debug=fast_dev_run",
    ]


def test_auto_weights_are_inverse_class_frequency_of_the_training_split(
    runs_dir: Path, tmp_path: Path
) -> None:
    """Catches: weights from the whole folder instead of the training split, not inverse to the counts,
    or not reaching the task (class_weights_info is what summary.json reports)."""
    from litvision.build import build_datamodule, build_task, build_trainer

    cfg = compose_cfg(
        [*_overrides(_imbalanced_folder(tmp_path / "folder")), "model.class_weights=auto"], runs_dir
    )
    dm, task = build_datamodule(cfg), build_task(cfg)
    build_trainer(cfg).fit(task, datamodule=dm)
    train_counts = np.bincount(dm.datasets["train"].labels, minlength=3)
    assert train_counts.tolist() == [16, 8, 4]  # 80% of each class (stratified)
    info = task.class_weights_info
    assert info["mode"] == "auto" and info["counts"] == [16, 8, 4]
    expected = [28 / (3 * 16), 28 / (3 * 8), 28 / (3 * 4)]
    assert info["weights"] == pytest.approx(expected)
    # Rarer classes weigh more, in inverse proportion to their counts.
    assert info["weights"][2] / info["weights"][0] == pytest.approx(4.0)


def test_given_weights_weigh_the_loss(runs_dir: Path, tmp_path: Path) -> None:
    """class_weights=[1, 0, 0]: only class 0's images count, for hard labels and for the soft targets of
    MixUp/CutMix alike. Catches: weights computed but not passed to the loss; weights dropped for soft
    targets (`weight if y.ndim == 1 else None`); weights reversed (class K-1 weighted as class 0)."""
    import torch.nn.functional as F

    from litvision.build import build_datamodule, build_task, build_trainer

    cfg = compose_cfg(
        [*_overrides(_imbalanced_folder(tmp_path / "folder")), "model.class_weights=[1,0,0]"], runs_dir
    )
    dm, task = build_datamodule(cfg), build_task(cfg)
    build_trainer(cfg).fit(task, datamodule=dm)
    assert task.class_weights_info == {"mode": "given", "weights": [1.0, 0.0, 0.0]}
    logits, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    torch.testing.assert_close(task._loss(logits, y), F.cross_entropy(logits[y == 0], y[y == 0]))
    # Soft targets (a MixUp of two classes): -sum_c w_c y_c log p_c, averaged over the batch (PyTorch's
    # cross_entropy with probabilities: the mean is over samples, not over weights).
    soft = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.4, 0.6], [0.5, 0.0, 0.5]])
    logits = torch.randn(3, 3)
    weighted = -(soft * torch.tensor([1.0, 0.0, 0.0]) * F.log_softmax(logits, dim=1)).sum(1).mean()
    torch.testing.assert_close(task._loss(logits, soft), weighted)


def test_wrong_length_is_one_line(tmp_path: Path) -> None:
    """Catches: a 2-weight list for 10 classes reaching cross_entropy (a shape error mid-training), and
    an 11-weight list accepted (a length check written `<`: the extra weight is silently ignored)."""
    from litvision.build import build_task
    from litvision.errors import UserError
    from litvision.tasks.options import check_training_options

    for n in (2, 11):
        weights = ",".join(["1.0"] * n)
        cfg = compose_cfg([f"model.class_weights=[{weights}]"], tmp_path)
        for check in (check_training_options, build_task):
            with pytest.raises(
                UserError, match=rf"model\.class_weights has {n} values but there are 10 classes"
            ) as e:
                check(cfg)
            assert "\n" not in str(e.value)


# -- resolve_class_weights on the DataModule shapes it meets (the unit level: no training) ----------
class _DataModule:
    def __init__(self, train=None, class_names=None) -> None:
        if train is not None:
            self.datasets = {"train": train}
        if class_names is not None:
            self.class_names = class_names


class _Labelled:
    def __init__(self, labels) -> None:
        self.labels = labels


def test_auto_reads_labels_from_a_tensor_dataset_a_labels_array_or_tensor() -> None:
    """Catches: the TensorDataset branch dropped or reading the wrong tensor, tensor labels not
    brought to the CPU as integers, or the counts losing a class (bincount without minlength)."""
    from torch.utils.data import TensorDataset

    from litvision.tasks.class_weights import resolve_class_weights

    y = torch.tensor([0, 0, 0, 1, 2, 2])
    expected = {"mode": "auto", "weights": [6 / 9, 6 / 3, 6 / 6], "counts": [3, 1, 2]}
    for train in (
        TensorDataset(torch.zeros(6, 1, 2, 2), y),
        _Labelled(y),
        _Labelled(y.numpy().tolist()),
        _Labelled(y.to(torch.int32)),
    ):
        got = resolve_class_weights("auto", 3, _DataModule(train))
        assert got["mode"] == "auto" and got["counts"] == expected["counts"], type(train)
        np.testing.assert_allclose(got["weights"], expected["weights"], rtol=1e-12)
        assert all(type(w) is float for w in got["weights"])


def test_auto_without_labels_is_one_line_naming_the_fix() -> None:
    """Catches: a DataModule without datasets (or without a train split, or a split without labels)
    crashing with an AttributeError instead of the one-line refusal."""
    from torch.utils.data import Dataset

    from litvision.errors import UserError
    from litvision.tasks.class_weights import resolve_class_weights

    class NoLabels(Dataset):
        def __len__(self) -> int:
            return 1

    for dm in (object(), _DataModule(), _DataModule(NoLabels())):
        with pytest.raises(UserError) as err:
            resolve_class_weights("auto", 3, dm)
        assert str(err.value) == (
            "model.class_weights=auto needs the training split's labels, and this DataModule has none; "
            "give the weights as a list instead."
        )


@pytest.mark.parametrize("names", [None, ["cat", "dog", "owl", "eel"]])
def test_a_class_missing_from_the_training_split_is_named(names) -> None:
    """The last class absent (bincount would not even count it) and one in the middle: both named,
    by the DataModule's class names when it has them, else by index. Catches: the check dropped
    (a division by zero, inf weights), names ignored, or the absent top class missed."""
    from litvision.errors import UserError
    from litvision.tasks.class_weights import resolve_class_weights

    dm = _DataModule(_Labelled(np.array([0, 0, 2, 2, 2])), class_names=names)
    with pytest.raises(UserError) as err:
        resolve_class_weights("auto", 4, dm)
    missing = "dog, eel" if names else "1, 3"
    assert str(err.value) == (
        f"model.class_weights=auto: the training split has no images of class(es) {missing}; "
        "add some, or give the weights as a list."
    )


def test_resolve_checks_a_given_list_against_the_class_count() -> None:
    """Catches resolve_class_weights passing the spec or the class count on to its check as None
    (a 2-weight list for 3 classes reaching the loss)."""
    from litvision.errors import UserError
    from litvision.tasks.class_weights import resolve_class_weights

    assert resolve_class_weights([1, 2, 3], 3) == {"mode": "given", "weights": [1.0, 2.0, 3.0]}
    with pytest.raises(UserError, match=r"has 2 values but there are 3 classes"):
        resolve_class_weights([1.0, 2.0], 3)
    with pytest.raises(UserError, match=r"must be auto, null or a list"):
        resolve_class_weights("balanced", 3)
