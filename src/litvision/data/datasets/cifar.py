"""CIFAR-10 and CIFAR-100 from the python pickle batches of the official archives.

    <root>/cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta
    <root>/cifar-100-python/train, test, meta          (fine labels: 100 classes)

    make train EXP=<experiment> ARGS="data.root=/data/cifar10"

A missing archive is downloaded (rank zero, in `prepare_data`) and verified with
its md5 before extraction. Files already on disk are parsed by the same reader
whether they came from the archive or were written by the test fixtures: the md5
guards the download, the reader checks the structure (keys, shapes, label range).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from litvision.data.classification import ClassificationDataModule, RawSplits
from litvision.data.datasets.registry import register_dataset
from litvision.data.datasets.sources import TensorImages
from litvision.data.pipeline.download import download_failed
from litvision.data.transforms.classification import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD
from litvision.errors import UserError

# Pickles can run code when loaded; CIFAR batches need only numpy arrays and builtins.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


# batches.meta's label_names, in label order.
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a CIFAR batch")
        return super().find_class(module, name)


def load_batch(path: Path) -> dict[str, Any]:
    """One CIFAR pickle (written by Python 2: latin-1 strings) as a dict with str keys."""
    try:
        with open(path, "rb") as f:
            obj = _BatchUnpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a damaged file
        raise UserError(
            f"{path} is not a readable CIFAR pickle ({type(e).__name__}: {e}); delete the folder so that "
            "the archive is downloaded and verified again."
        ) from None
    if not isinstance(obj, dict):
        raise UserError(
            f"{path} holds a {type(obj).__name__}, not a CIFAR batch dict; delete it and download again."
        )
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def read_images(batch: dict[str, Any], label_key: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR rows are 3072 bytes: 1024 red, 1024 green, 1024 blue, each 32x32 row-major -> (N, 3, 32, 32)."""
    if "data" not in batch or label_key not in batch:
        raise UserError(
            f"{path} lacks the '{'data' if 'data' not in batch else label_key}' entry of a CIFAR batch."
        )
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise UserError(
            f"{path}: data {data.shape} and {len(labels)} labels are not CIFAR rows of 3072 bytes."
        )
    return data.reshape(-1, 3, 32, 32), labels


class _CIFARDataModule(ClassificationDataModule):
    torchvision_class = ""
    folder = ""
    train_files: tuple[str, ...] = ()
    test_file = ""
    meta_file = ""
    label_key = ""
    names_key = ""

    def _base(self) -> Path:
        return self.root / self.folder

    def _missing(self) -> list[str]:
        files = (*self.train_files, self.test_file, self.meta_file)
        return [f for f in files if not (self._base() / f).is_file()]

    def prepare_data(self) -> None:
        if not self._missing() or not self.hparams.download:
            return
        import torchvision.datasets as tvd
        from torchvision.datasets.utils import download_and_extract_archive

        spec = getattr(tvd, self.torchvision_class)
        try:
            # download_and_extract_archive checks the archive's md5 before extracting it.
            download_and_extract_archive(spec.url, self.root, filename=spec.filename, md5=spec.tgz_md5)
        except Exception as e:  # noqa: BLE001
            raise download_failed(
                self.torchvision_class,
                [spec.url],
                self.root,
                f"{type(e).__name__}: {e}",
                f"download {spec.url} elsewhere and run `tar xzf {spec.filename} -C {self.root}`",
            ) from None

    def _read(self) -> RawSplits:
        missing = self._missing()
        if missing:
            raise UserError(
                f"{self.torchvision_class} not found: {self._base()} lacks {', '.join(missing)}. "
                f"Set data.root to the folder holding {self.folder}/, or keep data.download=true (needs network)."
            )
        meta_path = self._base() / self.meta_file
        meta = load_batch(meta_path)
        if self.names_key not in meta:
            raise UserError(f"{meta_path} lacks '{self.names_key}'; delete the folder and download again.")
        class_names = [str(n) for n in meta[self.names_key]]
        parts = [
            read_images(load_batch(self._base() / f), self.label_key, self._base() / f)
            for f in self.train_files
        ]
        train_x = np.concatenate([p[0] for p in parts])
        train_y = np.concatenate([p[1] for p in parts])
        test_path = self._base() / self.test_file
        test_x, test_y = read_images(load_batch(test_path), self.label_key, test_path)
        for y, where in ((train_y, "training batches"), (test_y, self.test_file)):
            if len(y) and (y.min() < 0 or y.max() >= len(class_names)):
                raise UserError(
                    f"{self._base()}: {where} have labels outside 0..{len(class_names) - 1} "
                    f"({len(class_names)} names in {self.meta_file}); the files do not belong together."
                )
        return RawSplits(
            train=TensorImages(torch.from_numpy(np.ascontiguousarray(train_x)), train_y),
            test=TensorImages(torch.from_numpy(np.ascontiguousarray(test_x)), test_y),
            class_names=class_names,
        )


@register_dataset(
    "cifar10",
    kind="classification",
    classes=CIFAR10_CLASSES,
    channels=3,
    native_size=32,
    mean=CIFAR10_MEAN,
    std=CIFAR10_STD,
    fixture="litvision.data.fixtures.classification:make_cifar10",
)
class CIFAR10DataModule(_CIFARDataModule):
    default_mean, default_std = CIFAR10_MEAN, CIFAR10_STD
    known_num_classes = 10
    torchvision_class = "CIFAR10"
    folder = "cifar-10-batches-py"
    train_files = tuple(f"data_batch_{i}" for i in range(1, 6))
    test_file = "test_batch"
    meta_file = "batches.meta"
    label_key = "labels"
    names_key = "label_names"


@register_dataset(
    "cifar100",
    kind="classification",
    num_classes=100,  # the fine labels; names from the archive's meta file
    channels=3,
    native_size=32,
    mean=CIFAR100_MEAN,
    std=CIFAR100_STD,
    fixture="litvision.data.fixtures.classification:make_cifar100",
)
class CIFAR100DataModule(_CIFARDataModule):
    default_mean, default_std = CIFAR100_MEAN, CIFAR100_STD
    known_num_classes = 100
    torchvision_class = "CIFAR100"
    folder = "cifar-100-python"
    train_files = ("train",)
    test_file = "test"
    meta_file = "meta"
    label_key = "fine_labels"
    names_key = "fine_label_names"
