"""TensorFlow's flower_photos: 3,670 JPEGs in 5 class folders (daisy, dandelion, roses, sunflowers, tulips).

    make train EXP=resnet50_flowers ARGS="data.root=/data/flower_photos"

An image folder with a download: when `data.root` does not exist, rank zero
fetches flower_photos.tgz, checks its sha256, and extracts it to `data.root`.
No official test split exists; the recipe keeps 20% of each class for validation
(seeded) and the test loop then reports on that validation split.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path

from litvision.data.datasets.image_folder import ImageFolderDataModule
from litvision.data.datasets.registry import register_dataset
from litvision.data.pipeline.download import download_verified
from litvision.data.transforms.classification import IMAGENET_MEAN, IMAGENET_STD
from litvision.errors import UserError

URL = "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz"
# sha256 (and size, 228,813,984 bytes) as published by tensorflow_datasets for this archive:
# tensorflow/datasets, tensorflow_datasets/url_checksums/tf_flowers.txt (the same object, served
# from http://download.tensorflow.org/example_images/flower_photos.tgz).
SHA256 = "4c54ace7911aaffe13a365c34f650e71dd5bf1be0a58b464e5a7183e3e595d9c"
CLASSES = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]


@register_dataset(
    "flowers",
    kind="classification",
    classes=CLASSES,
    channels=3,
    native_size=None,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    fixture="litvision.data.fixtures.classification:make_flowers",
)
class FlowersDataModule(ImageFolderDataModule):
    def _manual(self) -> str:
        return (
            f"run `curl -LO {URL} && tar xzf flower_photos.tgz` and set data.root to the flower_photos folder"
        )

    def _root_expected_now(self) -> bool:
        return not self.hparams.download

    def _root_missing_message(self) -> str:
        how = "keep data.download=true (needs network) or " if not self.hparams.download else ""
        return f"flower_photos not found at {self.root}; {how}{self._manual()}."

    def prepare_data(self) -> None:
        if self.root.is_dir() or not self.hparams.download:
            return
        parent = self.root.parent
        archive = download_verified(
            URL, parent / "flower_photos.tgz", SHA256, "flower_photos", self._manual()
        )
        with tempfile.TemporaryDirectory(dir=parent, prefix=".extract-") as tmp:
            with tarfile.open(archive) as tar:
                # The "data" filter refuses absolute paths and links out of the folder (Python >= 3.10.12).
                kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(tmp, **kwargs)
            extracted = Path(tmp) / "flower_photos"
            if not extracted.is_dir():
                raise UserError(f"{archive} does not contain flower_photos/; delete it and download again.")
            shutil.move(str(extracted), self.root)
