"""See what goes into the model: a grid of augmented training images with their class names.

Logged once, from the first training batch (so it costs no extra loading and shows
exactly what the model is fed), through `log_figure` (TensorBoard, W&B, and
`media/train_samples.png` in the run folder). Images are un-normalised with the
DataModule's `mean`/`std`. Batches that are not (images, labels) tensors, e.g.
detection batches, are left alone; without class names the labels show as numbers.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch


def unnormalize(images: torch.Tensor, mean: Any, std: Any) -> torch.Tensor:
    """(N, C, H, W) normalised floats -> [0, 1]; without statistics, each image is min-max scaled."""
    if images.dtype == torch.uint8:  # not normalised yet
        return images.detach().cpu().float() / 255
    images = images.detach().float().cpu()
    if mean is not None and std is not None and len(mean) == images.shape[1] == len(std):
        m = torch.tensor(mean, dtype=images.dtype).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=images.dtype).view(1, -1, 1, 1)
        return (images * s + m).clamp(0, 1)
    lo = images.amin(dim=(1, 2, 3), keepdim=True)
    hi = images.amax(dim=(1, 2, 3), keepdim=True)
    return (images - lo) / (hi - lo).clamp_min(1e-8)


def sample_grid_figure(images: torch.Tensor, labels: list[str], ncols: int = 8) -> Any:
    """A matplotlib figure of [0, 1] images (N, C, H, W), each titled with its label."""
    from matplotlib.figure import Figure

    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(1.6 * ncols, 1.8 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, label in zip(axes.flat, images, labels, strict=False):
        if img.shape[0] == 1:
            ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(img[:3].permute(1, 2, 0).numpy())
        ax.set_title(label, fontsize=8)
    fig.tight_layout()
    return fig


class SampleGrid(L.Callback):
    """Log `num_images` augmented training samples with their class names at the start of training."""

    def __init__(self, num_images: int = 16, ncols: int = 8, tag: str = "train/samples") -> None:
        self.num_images = num_images
        self.ncols = ncols
        self.tag = tag
        self.logged = False
        if num_images <= 0:
            self._done()

    def _done(self) -> None:
        # Nothing more to do at any batch: Lightning skips a hook that is None (utils/callback_hooks.py),
        # instead of calling this one at every step of the run to return at once.
        self.on_train_batch_start = None  # type: ignore[method-assign,assignment]

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.logged or self.num_images <= 0:
            return
        self.logged = True
        self._done()
        # fast_dev_run swaps the loggers for dummies and keeps no media: nothing would be shown.
        if trainer.fast_dev_run or not trainer.is_global_zero:
            return
        if not (isinstance(batch, (tuple, list)) and len(batch) >= 2):
            return
        images, labels = batch[0], batch[1]
        if not (
            torch.is_tensor(images) and images.ndim == 4 and torch.is_tensor(labels) and labels.ndim == 1
        ):
            return
        dm = getattr(trainer, "datamodule", None)
        names = getattr(dm, "class_names", None) or getattr(pl_module, "class_names", None)
        images = unnormalize(images[: self.num_images], getattr(dm, "mean", None), getattr(dm, "std", None))
        ids = labels[: self.num_images].tolist()
        titles = [names[i] if names and 0 <= i < len(names) else str(i) for i in ids]
        from litvision.utils.media import log_figure

        log_figure(trainer, self.tag, sample_grid_figure(images, titles, self.ncols))
