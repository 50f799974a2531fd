"""scikit-learn's handwritten digits: 1,797 real 8x8 images that ship inside scikit-learn.

The default experiment trains on it with no download and no GPU. Only the reading is the digits'
own; splits, k-fold, the duplicate check, Mixup/CutMix and the device cache are the shared
classification DataModule's (`litvision.data.classification`).

    DigitsDataModule(classes=[0, 1, 2, 3, 4])   # a notebook: a subset of the digits, relabelled 0..4
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from litvision.data.classification import ClassificationDataModule, RawSplits
from litvision.data.datasets.registry import register_dataset
from litvision.data.datasets.sources import TensorImages
from litvision.data.pipeline.splits import stratified_split
from litvision.errors import UserError

# Pixel values are 0..16; mean/std of the whole set after scaling to [0, 1].
DIGITS_MEAN, DIGITS_STD = 0.3050, 0.3817


@register_dataset(
    "digits",
    kind="classification",
    classes=[str(i) for i in range(10)],
    channels=1,
    native_size=8,
    mean=(DIGITS_MEAN,),
    std=(DIGITS_STD,),
    # Ships inside scikit-learn: the fixture writes nothing.
    fixture="litvision.data.fixtures:no_fixture",
)
class DigitsDataModule(ClassificationDataModule):
    """Stratified, seeded train/val/test split of `sklearn.datasets.load_digits`.

    `classes` keeps a subset of the digits (e.g. [0, 1, 2, 3, 4]) relabelled 0..k-1,
    for transfer-learning experiments between digit subsets. `val_fraction` and `test_fraction`
    are fractions of the whole set (the digits have no official test split).
    """

    default_mean, default_std = (DIGITS_MEAN,), (DIGITS_STD,)
    default_in_channels = 1
    #: Fixed by the data (sklearn's digits are 8x8): what export and benchmarks feed a model trained here.
    image_size = 8

    def __init__(
        self,
        num_classes: int | None = 10,
        batch_size: int = 64,
        val_fraction: float = 0.15,
        test_fraction: float = 0.2,
        seed: int = 42,
        num_workers: int = 0,
        classes: Sequence[int] | None = None,
        in_channels: int = 1,
        root: str = "sklearn.datasets.load_digits",
        image_size: int = 8,
        # The digits train as they are: no crop, no flip (a flipped 2 is no 2).
        train_crop: str = "none",
        hflip: float = 0.0,
        **kwargs: Any,
    ) -> None:
        chosen = sorted(classes) if classes is not None else list(range(10))
        if num_classes is not None and num_classes != len(chosen):
            raise UserError(
                f"data.num_classes={num_classes} but the digits data has {len(chosen)} classes "
                f"({[str(c) for c in chosen]}); set data.num_classes={len(chosen)}."
            )
        if in_channels != 1:
            raise UserError(
                f"data.in_channels={in_channels}, but the digits are grey images; set data.in_channels=1."
            )
        if not 0.0 <= test_fraction < 1.0 or val_fraction + test_fraction >= 1.0:
            raise UserError(
                f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} must leave "
                "images to train on (each >= 0, together < 1); 0.15 and 0.2 are the defaults."
            )
        super().__init__(
            root=root,
            num_classes=len(chosen),
            batch_size=batch_size,
            val_fraction=val_fraction,
            seed=seed,
            num_workers=num_workers,
            in_channels=1,
            image_size=image_size,
            train_crop=train_crop,
            hflip=hflip,
            **kwargs,
        )
        self.classes = chosen
        self.class_names = [str(c) for c in chosen]
        self.num_classes = len(chosen)

    @classmethod
    def inference_transform(cls, hparams: Mapping[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
        """A decoded uint8 RGB image (3, H, W) -> the digits' input: grey, 8x8, scaled to [0, 1] and
        normalised like the training images (bright strokes on a dark background, as in the data)."""
        from torchvision.transforms.v2.functional import resize

        from litvision.data.pipeline.decode import to_channels

        def apply(image: torch.Tensor) -> torch.Tensor:
            grey = to_channels(image, 1)
            small = resize(grey, [8, 8], antialias=True).float() / 255.0
            return (small - DIGITS_MEAN) / DIGITS_STD

        return apply

    def _transforms(self) -> tuple[Callable | None, Callable | None]:
        tf = self.transforms
        if (tf.image_size, tf.resize_size or 8, tf.train_crop, tf.hflip, tf.augment) == (
            8,
            8,
            "none",
            0,
            "none",
        ):
            # 8x8 images and nothing random to do: the transforms would copy each image unchanged,
            # at ten times the cost of the rest of an epoch.
            return None, None
        return super()._transforms()

    def _read(self) -> RawSplits:
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        keep = np.isin(y, self.classes)
        x, y = x[keep], np.searchsorted(np.asarray(self.classes), y[keep])
        # 0..16 -> 0..255 (x 255/16, rounded: distinct values stay distinct), the uint8 every reader gives.
        pixels = np.rint(x * (255.0 / 16.0)).astype(np.uint8).reshape(-1, 1, 8, 8)
        source = TensorImages(torch.from_numpy(pixels), y.astype(np.int64))
        hp = self.hparams
        # The test split first (fixed by the seed), so that k-fold folds cover only the rest; without
        # k-fold the validation split is cut in the same pass, as a fraction of the whole set.
        if hp.num_folds is None:
            train_idx, val_idx, test_idx = stratified_split(y, (hp.val_fraction, hp.test_fraction), hp.seed)
            return RawSplits(
                source, self.class_names, test_indices=test_idx, train_indices=train_idx, val_indices=val_idx
            )
        rest, test_idx = stratified_split(y, (hp.test_fraction,), hp.seed)
        return RawSplits(source, self.class_names, test_indices=test_idx, train_indices=rest)
