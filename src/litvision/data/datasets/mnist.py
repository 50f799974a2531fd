"""MNIST from its idx files, laid out as torchvision lays them out.

    <root>/MNIST/raw/train-images-idx3-ubyte[.gz]   train-labels-idx1-ubyte[.gz]
    <root>/MNIST/raw/t10k-images-idx3-ubyte[.gz]    t10k-labels-idx1-ubyte[.gz]

    make train EXP=<experiment> ARGS="data=mnist data.root=/data/mnist"

Missing files are downloaded (rank zero, in `prepare_data`) from torchvision's
mirrors and checked against their md5s. Validation is a stratified, seeded part
of the 60,000 training images; test is the official 10,000.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from litvision.data.classification import ClassificationDataModule, RawSplits
from litvision.data.datasets.registry import register_dataset
from litvision.data.datasets.sources import TensorImages
from litvision.data.pipeline.download import download_failed
from litvision.data.transforms.classification import MNIST_MEAN, MNIST_STD
from litvision.errors import UserError

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# idx type codes (third byte of the magic number) -> numpy dtype, big-endian.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read one idx file (gzipped or not): magic 0x0000TTDD, DD big-endian uint32 sizes, then the data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise UserError(
            f"{path} is not an idx file (bad magic number); delete it so that it is downloaded again."
        )
    ndim = data[3]
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) - offset != expected:
        raise UserError(
            f"{path} holds {len(data) - offset} bytes of data but its header says {dims} ({expected} bytes): "
            "the file is truncated or corrupt; delete it so that it is downloaded again."
        )
    return np.frombuffer(data, dtype=dtype, offset=offset).reshape(dims).astype(dtype.newbyteorder("="))


def raw_folder(root: Path) -> Path:
    return root / "MNIST" / "raw"


def find_file(root: Path, name: str) -> Path | None:
    for candidate in (raw_folder(root) / name, raw_folder(root) / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


@register_dataset(
    "mnist",
    kind="classification",
    classes=[str(i) for i in range(10)],
    channels=1,
    native_size=28,
    mean=MNIST_MEAN,
    std=MNIST_STD,
    fixture="litvision.data.fixtures.classification:make_mnist",
)
class MNISTDataModule(ClassificationDataModule):
    default_mean, default_std = MNIST_MEAN, MNIST_STD
    default_in_channels = 1
    known_num_classes = 10

    def _missing(self) -> list[str]:
        return [name for name in FILES.values() if find_file(self.root, name) is None]

    def prepare_data(self) -> None:
        if not self._missing() or not self.hparams.download:
            return
        from torchvision.datasets import MNIST
        from torchvision.datasets.utils import download_and_extract_archive

        folder = raw_folder(self.root)
        folder.mkdir(parents=True, exist_ok=True)
        for filename, md5 in MNIST.resources:
            if find_file(self.root, filename.removesuffix(".gz")) is not None:
                continue
            errors = []
            for mirror in MNIST.mirrors:
                try:
                    download_and_extract_archive(f"{mirror}{filename}", folder, filename=filename, md5=md5)
                    break
                except Exception as e:  # noqa: BLE001 - try the next mirror, report all of them
                    errors.append(f"{mirror}: {e}")
            else:
                raise download_failed(
                    "MNIST",
                    [f"{m}{filename}" for m in MNIST.mirrors],
                    folder,
                    "; ".join(errors),
                    f"place {filename} from any MNIST mirror in {folder}",
                )

    def _read(self) -> RawSplits:
        missing = self._missing()
        if missing:
            raise UserError(
                f"MNIST not found: {raw_folder(self.root)} lacks {', '.join(missing)}. "
                "Set data.root to the folder holding MNIST/raw/, or keep data.download=true (needs network)."
            )
        arrays = {key: read_idx(find_file(self.root, name)) for key, name in FILES.items()}
        for split in ("train", "test"):
            images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise UserError(
                    f"MNIST {split} files in {raw_folder(self.root)} disagree: images {images.shape}, "
                    f"labels {labels.shape}; delete them so that they are downloaded again."
                )

        def source(split: str) -> TensorImages:
            images = torch.from_numpy(np.ascontiguousarray(arrays[f"{split}_images"], dtype=np.uint8))
            return TensorImages(images.unsqueeze(1), arrays[f"{split}_labels"].astype(np.int64))

        return RawSplits(train=source("train"), test=source("test"), class_names=[str(i) for i in range(10)])
