"""Cost of the duplicate/leakage check (`data.check_duplicates`) against one epoch of digits_cnn.

    python -m bench data_checks          # -> bench/results/data_checks.json

The rule (issue 11): `exact` stays on by default only if checking 10,000 images costs less
than 5% of one training epoch of the default experiment (digits_cnn, on this machine).

Measured, median of REPEATS, in one process after a warm-up:
- `exact` and `near` on 10,000 in-memory uint8 images split 8,000/1,000/1,000, at digits
  (1x8x8), MNIST (1x28x28) and CIFAR (3x32x32) sizes: what MNIST/CIFAR/digits DataModules run;
- `exact` on image files (a folder of 64x64 PNGs read through ImageFolderDataModule, check on
  vs off): every file is decoded once more at set-up, so it is reported per image and against
  one decoding pass over the same files (what an epoch costs at least);
- one epoch of digits_cnn: the training epoch alone (on_train_epoch_start -> end, validation
  excluded, so the baseline is the smallest honest one) with the experiment's own settings;
- the check as the default experiment really runs it (1,797 digits).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

REPEATS = 5
N = 10_000
FILES = 1_000
SHAPES = {"digits_1x8x8": (1, 8, 8), "mnist_1x28x28": (1, 28, 28), "cifar_3x32x32": (3, 32, 32)}


CPU_S: dict[str, float] = {}  # CPU seconds of this process (all threads): less sensitive to other load


def _median_s(fn, repeats: int = REPEATS, name: str | None = None) -> float:
    times, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    if name:
        CPU_S[name] = statistics.median(cpu)
    return statistics.median(times)


def time_arrays() -> dict[str, float]:
    from litvision.data.pipeline.duplicates import find_duplicates

    rng = np.random.default_rng(0)
    out = {}
    for name, shape in SHAPES.items():
        a = rng.integers(0, 256, (N, *shape), dtype=np.uint8)
        parts = {"train": a[:8000], "val": a[8000:9000], "test": a[9000:]}
        splits = {k: (lambda i, v=v: v[i], len(v), lambda i, k=k: f"{k}[{i}]", v) for k, v in parts.items()}
        for mode in ("exact", "near"):
            key = f"{mode}_{name}_ms"
            out[key] = round(1000 * _median_s(lambda m=mode, s=splits: find_duplicates(s, m), name=key), 2)
    return out


def time_files(root: Path) -> dict[str, float]:
    from PIL import Image

    from litvision.data.datasets.sources import FileImages
    from litvision.data.pipeline.duplicates import find_duplicates

    rng = np.random.default_rng(1)
    paths = []
    for i in range(FILES):
        path = root / f"c{i % 5}" / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    source = FileImages(paths, np.arange(FILES) % 5)
    splits = {"train": (source.image, FILES, lambda i: str(paths[i]))}
    check = _median_s(lambda: find_duplicates(splits, "exact"), 3)
    decode = _median_s(lambda: [source.image(i) for i in range(FILES)], 3)
    return {
        "exact_files_64px_ms_per_image": round(1000 * check / FILES, 3),
        "decode_files_64px_ms_per_image": round(1000 * decode / FILES, 3),
        "exact_files_over_one_decoding_pass": round(check / decode, 3),
    }


def time_digits_epoch(runs: Path) -> tuple[list[float], list[float], float]:
    """(training-epoch wall and CPU seconds of digits_cnn after the first, the check's seconds on
    the real digits set-up)."""
    from lightning.pytorch.callbacks import Callback

    from litvision.build import build_datamodule, build_task, build_trainer
    from litvision.config import compose

    class EpochClock(Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

            self.cpu: list[float] = []

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self._t, self._c = time.perf_counter(), time.process_time()

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            self.times.append(time.perf_counter() - self._t)
            self.cpu.append(time.process_time() - self._c)

    cfg = compose(
        [
            "experiment=digits_cnn",
            f"paths.runs_dir={runs}",
            "trainer.max_epochs=6",
            "trainer.enable_progress_bar=false",
            "logger=csv",
            "callbacks=none",
            "+trainer.enable_checkpointing=false",
            "+trainer.enable_model_summary=false",
            f"hydra.run.dir={runs / 'epoch'}",
        ]
    )
    dm = build_datamodule(cfg)
    clock = EpochClock()
    trainer = build_trainer(cfg, callbacks=[clock])
    trainer.fit(build_task(cfg), datamodule=dm)
    return clock.times[1:], clock.cpu[1:], dm.data_checks["duplicates"]["seconds"]


def run() -> dict:
    import lightning  # noqa: F401 - imported by any run; not part of the check's cost

    with tempfile.TemporaryDirectory() as tmp:
        # Epochs before and after the check timings: background load hits both alike.
        wall, cpu, digits_check_s = time_digits_epoch(Path(tmp) / "a")
        arrays = time_arrays()
        wall2, cpu2, _ = time_digits_epoch(Path(tmp) / "b")
        files = time_files(Path(tmp) / "files")
    epoch_s, epoch_cpu_s = statistics.median(wall + wall2), statistics.median(cpu + cpu2)
    worst = max((k for k in arrays if k.startswith("exact_")), key=lambda k: arrays[k])
    share_wall = arrays[worst] / 1000 / epoch_s
    share_cpu = CPU_S[worst] / epoch_cpu_s
    share = max(share_wall, share_cpu)
    return {
        "images": N,
        "repeats": REPEATS,
        "digits_cnn_train_epoch_s": round(epoch_s, 3),
        "digits_cnn_train_epoch_cpu_s": round(epoch_cpu_s, 3),
        "digits_cnn_check_on_its_1797_images_ms": round(1000 * digits_check_s, 2),
        **arrays,
        **{f"{k.removesuffix('_ms')}_cpu_ms": round(1000 * v, 2) for k, v in CPU_S.items()},
        **files,
        "exact_10k_worst_case": worst,
        "exact_10k_over_epoch_wall": round(share_wall, 4),
        "exact_10k_over_epoch_cpu": round(share_cpu, 4),
        "target_share_at_most": 0.05,
        "exact_on_by_default": share < 0.05,
    }
