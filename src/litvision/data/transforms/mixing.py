"""Batch-level training augmentation: random erasing, then MixUp or CutMix (torchvision transforms.v2).

    make train EXP=resnet18_cifar10 ARGS="data.mixup_alpha=0.2 data.cutmix_alpha=1.0 data.random_erasing=0.25"

These run on a training batch after it is normalised (`on_after_batch_transfer` of
the classification DataModules), in the order of torchvision's classification
reference (`references/classification/train.py`): RandomErasing on the normalised
image, where its fill value 0 is the dataset mean, then MixUp or CutMix on the whole
batch. When both alphas are set, each batch picks one of the two at random (as timm's
`Mixup` with switch_prob 0.5 and torchvision's `RandomChoice([MixUp, CutMix])` do);
`mix_prob` is the chance that a batch is mixed at all (timm's `mixup_prob`).

With mixing on, every training batch's labels are probabilities, shape (N, num_classes),
summing to 1 per row (one-hot when a batch is not mixed), so the loss sees one target
type per run; the task's cross-entropy (and its label smoothing) takes them as they are.
Validation, test and predict batches are never touched.

The checks are plain Python, so a CLI can run them before importing torch.
"""

from __future__ import annotations

from typing import Any

from litvision.errors import UserError


def check_mixing(
    mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, mix_prob: float = 1.0, random_erasing: float = 0.0
) -> None:
    """One-line UserError for a value the transforms cannot take."""
    for key, alpha in (("mixup_alpha", mixup_alpha), ("cutmix_alpha", cutmix_alpha)):
        if alpha is None or float(alpha) < 0:
            raise UserError(
                f"data.{key}={alpha} must be >= 0 (0 turns it off; 0.2 for MixUp and 1.0 for CutMix are usual)."
            )
    for key, p in (("mix_prob", mix_prob), ("random_erasing", random_erasing)):
        if p is None or not 0.0 <= float(p) <= 1.0:
            raise UserError(f"data.{key}={p} is a probability: give a value in [0, 1].")


class BatchMixing:
    """Random erasing and MixUp/CutMix for (normalised images, class indices) training batches."""

    def __init__(
        self,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        mix_prob: float = 1.0,
        random_erasing: float = 0.0,
    ) -> None:
        check_mixing(mixup_alpha, cutmix_alpha, mix_prob, random_erasing)
        self.mixup_alpha, self.cutmix_alpha = float(mixup_alpha), float(cutmix_alpha)
        self.mix_prob, self.random_erasing = float(mix_prob), float(random_erasing)
        self._mixers: dict[int, Any] = {}
        self._eraser: Any = None

    @property
    def mixes(self) -> bool:
        return self.mix_prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)

    @property
    def active(self) -> bool:
        return self.mixes or self.random_erasing > 0

    def _mixer(self, num_classes: int) -> Any:
        if num_classes not in self._mixers:
            from torchvision.transforms import v2

            choices = []
            if self.mixup_alpha > 0:
                choices.append(v2.MixUp(alpha=self.mixup_alpha, num_classes=num_classes))
            if self.cutmix_alpha > 0:
                choices.append(v2.CutMix(alpha=self.cutmix_alpha, num_classes=num_classes))
            self._mixers[num_classes] = choices[0] if len(choices) == 1 else v2.RandomChoice(choices)
        return self._mixers[num_classes]

    def _erase(self, images: Any) -> Any:
        import torch
        from torchvision.transforms import v2

        if self._eraser is None:
            self._eraser = v2.RandomErasing(p=self.random_erasing, value=0)
        # One draw per image (a batch tensor through RandomErasing would share one box).
        return torch.stack([self._eraser(img) for img in images])

    def __call__(self, images: Any, labels: Any, num_classes: int) -> tuple[Any, Any]:
        """(N, C, H, W) float images and (N,) class indices -> augmented images and (N, K) soft labels.

        Without mixing (only erasing on), labels stay class indices.
        """
        import torch
        import torch.nn.functional as F

        if not torch.is_floating_point(images):
            raise TypeError("BatchMixing needs normalised float images; apply it after normalisation.")
        if self.random_erasing > 0:
            images = self._erase(images)
        if not self.mixes:
            return images, labels
        if float(torch.rand(())) < self.mix_prob:
            return self._mixer(num_classes)(images, labels)
        return images, F.one_hot(labels, num_classes).to(images.dtype)


def mix_training_batch(datamodule: Any, batch: Any) -> Any:
    """Apply `datamodule.mixing` to an (images, labels) batch while its Trainer is training.

    The one hook the classification DataModules call from `on_after_batch_transfer`.
    """
    mixing: BatchMixing | None = getattr(datamodule, "mixing", None)
    trainer = getattr(datamodule, "trainer", None)
    if mixing is None or not mixing.active or trainer is None or not trainer.training:
        return batch
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        return batch
    images, labels = batch
    return mixing(images, labels, int(datamodule.num_classes))
