"""Recipe parity: litvision's `lenet_mnist` against the plain PyTorch loop it replaces, on real digits.

    python -m bench recipe_parity        # ~2-4 min on 2 CPU cores; writes bench/results/recipe_parity.json

The data: scikit-learn's 1,797 real handwritten digits (8x8, they ship inside scikit-learn),
upscaled the way MNIST was made (each digit scaled into a 20x20 box, centred on a 28x28
canvas), split 80/20 stratified, and written as MNIST's own idx files
(<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte). Both sides read those files:
litvision through its MNIST DataModule, the plain loop through torchvision's `datasets.MNIST`.

The plain loop is the study-notes script: ToTensor + Normalize(0.1307, 0.3081), Adam lr 1e-3
constant, batch 128, 10 epochs, all training images, no validation split, the last weights
tested. It trains the same network class (litvision.models.classification.lenet.LeNet5), so the comparison is
between training recipes. litvision runs `experiment=lenet_mnist` unchanged (pointed at the
files) through `litvision.train.train`, the code `make train` runs. 3 seeds each; the target
is litvision's mean test accuracy >= the plain loop's - 0.5 points.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

SEEDS = (0, 1, 2)
EPOCHS, BATCH, LR = 10, 128, 1e-3
TARGET_GAP = 0.005


def write_digits_as_mnist(root: Path, test_fraction: float = 0.2, seed: int = 0) -> Path:
    """scikit-learn's digits as 28x28 MNIST idx files under root/MNIST/raw; returns root."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    from litvision.data.fixtures.classification import write_mnist
    from litvision.data.pipeline.splits import stratified_split

    x, y = load_digits(return_X_y=True)
    small = torch.tensor(x, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
    # MNIST: each digit normalised into a 20x20 box, centred in 28x28 (LeCun et al. 1998).
    box = F.interpolate(small, size=(20, 20), mode="bilinear", align_corners=False).clamp(0, 1)
    images = F.pad(box, (4, 4, 4, 4))[:, 0].mul(255).round().to(torch.uint8).numpy()
    train_idx, test_idx = stratified_split(y, (test_fraction,), seed)
    labels = y.astype(np.uint8)
    write_mnist(
        root,
        (images[train_idx], labels[train_idx]),
        (images[test_idx], labels[test_idx]),
        gzip_test=False,
    )
    return root


def plain_loop(root: Path, seed: int) -> float:
    """The study-notes script, verbatim in spirit; returns test accuracy of the last weights."""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from litvision.models.classification.lenet import LeNet5

    torch.manual_seed(seed)
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train_ds = datasets.MNIST(str(root), train=True, download=False, transform=tf)
    test_ds = datasets.MNIST(str(root), train=False, download=False, transform=tf)
    model = LeNet5()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(EPOCHS):
        model.train()
        for x, y in DataLoader(train_ds, batch_size=BATCH, shuffle=True):
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in DataLoader(test_ds, batch_size=512):
            correct += int((model(x).argmax(1) == y).sum())
    return correct / len(test_ds)


def litvision_recipe(root: Path, runs: Path, seed: int, overrides: tuple[str, ...] = ()) -> dict:
    from litvision.config import compose
    from litvision.train import train

    cfg = compose(
        [
            "experiment=lenet_mnist",
            f"data.root={root}",
            "data.download=false",
            "data.num_workers=0",
            f"seed={seed}",
            f"paths.runs_dir={runs}",
            "logger=csv",
            "trainer.accelerator=cpu",
            "trainer.enable_progress_bar=false",
            "callbacks.rich_progress_bar=null",
            *overrides,
        ]
    )
    summary = train(cfg)
    return {"test_acc": summary["test"]["test/acc"], "epochs": summary["epochs_completed"]}


def run() -> dict:
    import lightning as L

    with tempfile.TemporaryDirectory() as tmp:
        root = write_digits_as_mnist(Path(tmp) / "digits_mnist")
        plain, lit, times = [], [], {"plain_s": 0.0, "litvision_s": 0.0}
        for seed in SEEDS:
            t = time.perf_counter()
            plain.append(plain_loop(root, seed))
            times["plain_s"] += time.perf_counter() - t
            t = time.perf_counter()
            L.seed_everything(seed, verbose=False)
            lit.append(litvision_recipe(root, Path(tmp) / "runs", seed)["test_acc"])
            times["litvision_s"] += time.perf_counter() - t
    plain_mean, lit_mean = statistics.mean(plain), statistics.mean(lit)
    return {
        "data": "scikit-learn digits as 28x28 MNIST idx files: 1,437 train / 360 test, stratified",
        "plain_loop": "LeNet5, ToTensor+Normalize, Adam 1e-3 constant, batch 128, 10 epochs, no val split, last weights",
        "litvision": "experiment=lenet_mnist (as in experiments/lenet_mnist.yaml)",
        "seeds": list(SEEDS),
        "plain_test_acc": [round(a, 4) for a in plain],
        "litvision_test_acc": [round(a, 4) for a in lit],
        "plain_mean": round(plain_mean, 4),
        "litvision_mean": round(lit_mean, 4),
        "gap_points": round(100 * (lit_mean - plain_mean), 2),
        "target": f"litvision_mean >= plain_mean - {100 * TARGET_GAP} points",
        "meets_target": lit_mean >= plain_mean - TARGET_GAP,
        "wall_s": {k: round(v, 1) for k, v in times.items()},
    }
