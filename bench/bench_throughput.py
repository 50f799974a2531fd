"""Training throughput (images/s) against its ceiling: where the time goes between the model and the data.

    python -m bench throughput                 # full size on a GPU, reduced on the CPU
    BENCH_THROUGHPUT_ONLY=resnet18_cifar10 python -m bench throughput
    BENCH_THROUGHPUT_BATCHES=128 BENCH_THROUGHPUT_COMPILE=none python -m bench throughput   # a part

For each model, precision and batch size, in one process, the same network, loss and optimizer:

  a_ceiling      the model alone: one batch already on the device, stepped again and again
  b_hand_loop    a hand-written PyTorch loop over a standard DataLoader (per-image transforms and
                 normalisation in the workers, pinned memory, non-blocking copies)
  c_litvision    `litvision train` as configured (the Trainer, the task's logging, the worker pipeline)
  d_device_cache c with data.device_cache=true (the split on the device, augmented there in batches)
  e_fast         d with compile=true channels_last=true (trainer=gpu_fast); the compile warm-up is
                 reported on its own (warmup_s), the rate is the steady state after it

Data: synthetic CIFAR-10 written in the real pickle format (50,000 training images on a GPU),
pad-crop + flip augmentation for every variant (vit_cifar10's RandAugment runs per image on CPU
workers and has no device version, so it is switched off here for both models alike); the
detector (yolov1_shapes) runs a, b and c on the generated shapes data. Every rate is the steady
state: `warm` steps first (loader prefetch drained, kernels chosen), then `steps` timed steps
between device synchronisations. Loader variants use LOADER_WORKERS workers. On the CPU the
variants run in three interleaved, rotated rounds (the median is reported, every sample kept),
and two more rows time the data path alone, no model: c_data_only (the worker DataLoader) and
d_data_only (the device cache). One GPU round fits the 15-minute device budget.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

GPU_PLAN = {
    "models": ["resnet18_cifar10", "vit_cifar10"],
    "batches": [128, 512],
    "precisions": ["32-true", "bf16-mixed"],
    "train_images": 50_000,
    # Loader variants warm up past the 2 x workers batches prefetched while the Trainer starts.
    "warm": {"loader": 26, "device": 5},
    # About 1.5 s of timed steps at the ceiling's rate, so that launch jitter averages out.
    "steps": {128: 150, 512: 60, 64: 40},
    "detector_batches": [64],
    "detector_images": 2048,
    # compile (trainer=gpu_fast) at the preset's precision, at the recipe's batch and the large one.
    "compile": [("bf16-mixed", 128), ("bf16-mixed", 512)],
    "repeats": 1,
}
CPU_PLAN = {
    "models": ["resnet18_cifar10", "vit_cifar10"],
    "batches": [128],
    "precisions": ["32-true"],
    "train_images": 2_000,
    # A ResNet-18 step at batch 128 takes seconds on 2 cores: few steps, and the loader's
    # one-worker prefetch is drained by the warm-up step.
    "warm": {"loader": 2, "device": 1},
    "steps": {128: 4, 16: 4},
    "detector_batches": [16],
    "detector_images": 256,
    "compile": [],
    # A shared 2-core VM's load changes by the minute: three interleaved rounds, the median of each.
    "repeats": 3,
}
DETECTOR = "yolov1_shapes"


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- data ---------------------------------------------------------------------------------------------
def write_cifar(root: Path, n_train: int, seed: int = 0) -> Path:
    """Random CIFAR-10 in the archive's format: 5 training pickles, a test pickle, batches.meta."""
    from litvision.data.fixtures.classification import CIFAR10_CLASSES, write_cifar10

    rng = np.random.default_rng(seed)
    per = n_train // 5
    batches = [
        (rng.integers(0, 256, (per, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, per)) for _ in range(5)
    ]
    n_test = max(100, n_train // 50)
    test = (rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n_test))
    write_cifar10(root, batches, test, CIFAR10_CLASSES)
    return root


# -- (a) and (b): plain PyTorch -----------------------------------------------------------------------
def _optimizer(cfg: Any, net: Any) -> Any:
    from hydra.utils import instantiate

    return instantiate(cfg.model.optimizer)(net.parameters())


def _timed_loop(step: Callable[[Any], None], batches: Any, warm: int, steps: int, device: Any) -> dict:
    """Run warm + steps steps; seconds for the timed ones between two device synchronisations."""
    it = iter(batches)
    for _ in range(warm):
        step(next(it))
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step(next(it))
    _sync(device)
    return {"seconds": time.perf_counter() - t0}


def _classification_step(net: Any, opt: Any, device: Any, bf16: bool, smoothing: float) -> Callable:
    import torch
    import torch.nn.functional as F

    def step(batch: Any) -> None:
        x, y = batch
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(net(x), y, label_smoothing=smoothing)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def _detection_step(net: Any, opt: Any, device: Any, bf16: bool) -> Callable:
    import torch

    def step(batch: Any) -> None:
        images, targets = batch[0], batch[-1]
        images = [i.to(device, non_blocking=True) for i in images]
        targets = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in t.items()} for t in targets]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            losses = net(images, targets)
            loss = torch.stack(list(losses.values())).sum()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def _repeat(batch: Any) -> Any:
    while True:
        yield batch


def ceiling(cfg: Any, device: Any, bf16: bool, warm: int, steps: int, detector: bool) -> dict:
    """(a) One batch, already on the device, through forward, backward and the optimizer step."""
    import torch

    from litvision.build import build_datamodule, build_task

    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True  # what one writes by hand; (c)-(e) get the Trainer's setting
    net = build_task(cfg).net.to(device).train()
    opt = _optimizer(cfg, net)
    if detector:
        dm = build_datamodule(cfg)
        dm.setup("fit")
        images, *_, targets = next(iter(dm.train_dataloader()))
        move = lambda v: v.to(device) if torch.is_tensor(v) else v  # noqa: E731
        batch = ([i.to(device) for i in images], [{k: move(v) for k, v in t.items()} for t in targets])
        step = _detection_step(net, opt, device, bf16)
    else:
        bs, size = int(cfg.data.batch_size), int(cfg.data.image_size)
        x = torch.randn(bs, 3, size, size, device=device)
        batch = (x, torch.randint(0, int(cfg.data.num_classes), (bs,), device=device))
        step = _classification_step(net, opt, device, bf16, float(cfg.model.get("label_smoothing") or 0.0))
    return _timed_loop(step, _repeat(batch), warm, steps, device)


def hand_loop(cfg: Any, device: Any, bf16: bool, warm: int, steps: int, detector: bool) -> dict:
    """(b) The loop one would write by hand: DataLoader (per-image transforms), copy, step."""
    import torch
    from torch.utils.data import DataLoader
    from torchvision.transforms import v2

    from litvision.build import build_datamodule, build_task
    from litvision.data.datasets.sources import ImageSubset

    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    net = build_task(cfg).net.to(device).train()
    opt = _optimizer(cfg, net)
    dm = build_datamodule(cfg)
    dm.setup("fit")
    if detector:
        loader = dm.train_dataloader()
        step = _detection_step(net, opt, device, bf16)
    else:
        ds = dm.datasets["train"]
        per_image = v2.Compose(
            [ds.transform, v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(dm.mean), list(dm.std))]
        )
        workers = int(cfg.data.num_workers)
        loader = DataLoader(
            ImageSubset(ds.source, ds.indices, per_image),
            batch_size=int(cfg.data.batch_size),
            shuffle=True,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            drop_last=True,
            persistent_workers=workers > 0,
        )
        step = _classification_step(net, opt, device, bf16, float(cfg.model.get("label_smoothing") or 0.0))

    def forever() -> Any:
        while True:
            yield from loader

    return _timed_loop(step, forever(), warm, steps, device)


def data_only(cfg: Any, device: Any, warm: int, steps: int) -> dict:
    """The training batches alone, no model: litvision's loader as the Trainer would get it.

    The worker DataLoader's batches are copied to the device and normalised there (as `c` does
    under a GPU Trainer); the device cache's come out ready. Shows the data path's own cost.
    """
    from litvision.build import build_datamodule

    dm = build_datamodule(cfg)
    dm.setup("fit")
    loader = dm.train_dataloader()

    def step(batch: Any) -> None:
        x = batch[0].to(device, non_blocking=True)
        dm.normalize(x).sum()

    def forever() -> Any:
        while True:
            yield from loader

    out = _timed_loop(step, forever(), warm, steps, device)
    return {**out, "loader": type(loader).__name__}


# -- (c)-(e): litvision -------------------------------------------------------------------------------
class StepClock:
    """A callback that times the training steps after the first `warm` ones (across epochs), and on a
    GPU counts the operations that made the CPU wait for it during those steps (`syncs`)."""

    def __new__(cls, warm: int, device: Any) -> Any:
        from lightning.pytorch import Callback

        class Clock(Callback):
            def __init__(self) -> None:
                self.n, self.t = 0, {}
                self.syncs: list = []
                self._watch: Any = None

            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
                if self.n in (0, warm):
                    _sync(device)
                    self.t[self.n] = time.perf_counter()
                if self.n == warm and device.type == "cuda":
                    self._watch = _SyncWatch()

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
                self.n += 1
                if self.n == 2:
                    _sync(device)
                    self.t["two"] = time.perf_counter()
                if trainer.global_step >= trainer.max_steps:
                    if self._watch is not None:
                        self.syncs = self._watch.stop()
                    _sync(device)
                self.t["end"] = time.perf_counter()

        return Clock()


class _SyncWatch:
    """torch.cuda's sync debug mode, recorded: each operation that waits for the GPU warns, and the
    warning's Python caller (the last frames outside torch) says where it came from."""

    def __init__(self) -> None:
        import warnings

        import torch

        self.seen: list[str] = []
        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("always")
        warnings.showwarning = self._show
        try:
            torch.cuda.set_sync_debug_mode("warn")
            self.error = None
        except RuntimeError as e:  # a counter must never cost the measurement
            self.error = f"sync debug mode: {e}"[:120]

    def _show(self, message: Any, *args: Any, **kwargs: Any) -> None:
        import traceback

        if "synchroniz" not in str(message):
            return
        frames = [
            f
            for f in traceback.extract_stack()[:-1]
            if not f.filename.endswith("warnings.py") and "/torch/" not in f.filename
        ]
        self.seen.append(
            " < ".join(f"{Path(f.filename).name}:{f.lineno}:{f.name}" for f in frames[-3:][::-1])
        )

    def stop(self) -> list[str]:
        import torch

        if self.error is None:
            torch.cuda.set_sync_debug_mode("default")
        self._catch.__exit__(None, None, None)
        return [self.error] if self.error else self.seen


def litvision_fit(cfg: Any, device: Any, warm: int, steps: int) -> dict:
    """(c)-(e) `litvision train` on this config (val, test and checkpoints off); steady-state seconds."""
    import lightning as L
    from omegaconf import OmegaConf, open_dict

    from litvision.build import build_callbacks, build_datamodule, build_loggers, build_task, build_trainer

    with open_dict(cfg):
        cfg.trainer.max_steps = warm + steps
        cfg.trainer.max_epochs = -1
    OmegaConf.resolve(cfg)
    L.seed_everything(0, verbose=False)
    clock = StepClock(warm, device)
    dm, task = build_datamodule(cfg), build_task(cfg)
    trainer = build_trainer(cfg, callbacks=[*build_callbacks(cfg), clock], loggers=build_loggers(cfg))
    trainer.fit(task, datamodule=dm)
    seconds = clock.t["end"] - clock.t[warm]
    per_step = seconds / steps
    return {
        "seconds": seconds,
        # What waited for the GPU in the timed steps (0 when the step never reads a value back).
        **(
            {"syncs": len(clock.syncs), "sync_sources": dict(Counter(clock.syncs).most_common(4))}
            if device.type == "cuda"
            else {}
        ),
        # The first two steps beyond two steady ones: compile's (and cuDNN's) one-off cost.
        "warmup_s": round(max(0.0, clock.t["two"] - clock.t[0] - 2 * per_step), 2),
        "loader": type(trainer.train_dataloader).__name__,
    }


# -- the plan -----------------------------------------------------------------------------------------
def _overrides(model: str, root: Path, runs: Path, bs: int, precision: str, accel: str, workers: int) -> list:
    common = [
        f"experiment={model}",
        f"trainer={accel}",
        f"trainer.precision={precision}",
        f"data.batch_size={bs}",
        f"data.num_workers={workers}",
        "trainer.limit_val_batches=0",
        "trainer.num_sanity_val_steps=0",
        "+trainer.enable_checkpointing=false",
        # The default callbacks (progress bar, LR monitor, sample grid, pre-emption), less the two that
        # need validation at an epoch end; the default log_every_n_steps (gpu_fast sets its own).
        "callbacks.early_stopping=null",
        "callbacks.model_checkpoint=null",
        "+trainer.enable_model_summary=false",
        "logger=csv",
        f"paths.runs_dir={runs}",
    ]
    if model == DETECTOR:
        return [*common, f"data.root={root / 'shapes'}"]
    return [*common, f"data.root={root / 'cifar10'}", "data.download=false", "data.augment=none"]


VARIANT_OVERRIDES = {
    "c_litvision": ["data.device_cache=false"],
    "d_device_cache": ["data.device_cache=true"],
    # The preset itself (bf16-mixed, compile, channels_last); the run's precision stays as given.
    "e_fast": ["trainer=gpu_fast", "data.device_cache=true"],
}


def _variant(
    name: str, base: list[str], device: Any, bf16: bool, warm: int, steps: int, detector: bool
) -> Callable[[], dict]:
    """A thunk that measures one variant on a config composed from `base` plus the variant's overrides."""
    from litvision.config import compose

    if name == "a_ceiling":
        return lambda: ceiling(compose(base), device, bf16, warm, steps, detector)
    if name == "b_hand_loop":
        return lambda: hand_loop(compose(base), device, bf16, warm, steps, detector)
    if name in ("c_data_only", "d_data_only"):
        extra = VARIANT_OVERRIDES[
            name.replace("data_only", "litvision" if name[0] == "c" else "device_cache")
        ]
        return lambda: data_only(compose([*base, *extra]), device, warm, steps)
    extra = [] if detector else VARIANT_OVERRIDES[name]
    presets = [o for o in extra if o.startswith("trainer=")]
    if presets:  # a preset replaces the base's trainer group (Hydra takes one value per group)
        base = [o for o in base if not o.startswith("trainer=")]
    return lambda: litvision_fit(compose([*presets, *base, *extra[len(presets) :]]), device, warm, steps)


def _restricted(plan: dict) -> dict:
    """The plan cut down by BENCH_THROUGHPUT_BATCHES=128,512 / _PRECISIONS=bf16-mixed / _COMPILE=none."""
    env = os.environ.get
    if env("BENCH_THROUGHPUT_BATCHES"):
        plan["batches"] = [int(b) for b in env("BENCH_THROUGHPUT_BATCHES", "").split(",")]
    if env("BENCH_THROUGHPUT_PRECISIONS"):
        plan["precisions"] = env("BENCH_THROUGHPUT_PRECISIONS", "").split(",")
    if env("BENCH_THROUGHPUT_COMPILE") == "none":
        plan["compile"] = []
    return plan


def run() -> dict:
    import torch

    cuda = torch.cuda.is_available()
    plan = _restricted(dict(GPU_PLAN if cuda else CPU_PLAN))
    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    accel = "gpu" if cuda else "cpu"
    workers = int(os.environ.get("LOADER_WORKERS", min(12, max(1, (os.cpu_count() or 2) - 2))))
    only = os.environ.get("BENCH_THROUGHPUT_ONLY")
    models = [m for m in [*plan["models"], DETECTOR] if not only or m in only.split(",")]
    rows: list[dict] = []
    results = {
        "device": torch.cuda.get_device_name(0) if cuda else f"cpu ({os.cpu_count()} cores)",
        "torch": torch.__version__,
        "full_size": cuda,
        "loader_workers": workers,
        "train_images": plan["train_images"],
        "plan": {k: plan[k] for k in ("batches", "precisions", "compile")} | {"models": models},
        "rows": rows,
    }
    partial = os.environ.get("BENCH_THROUGHPUT_PARTIAL")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_cifar(root / "cifar10", plan["train_images"])
        for model in models:
            detector = model == DETECTOR
            for bs in plan["detector_batches"] if detector else plan["batches"]:
                for precision in plan["precisions"]:
                    bf16 = precision.startswith("bf16")
                    base = _overrides(model, root, root / "runs", bs, precision, accel, workers)
                    if detector:
                        base.append(f"data.generate.num_train={plan['detector_images']}")
                    names = ["a_ceiling", "b_hand_loop", "c_litvision"]
                    if not detector:
                        names.append("d_device_cache")
                        names += ["e_fast"] if (precision, bs) in plan["compile"] else []
                        names += ["c_data_only", "d_data_only"] if not cuda else []
                    case = {
                        n: {"model": model, "batch": bs, "precision": precision, "variant": n} for n in names
                    }
                    for r in range(plan["repeats"]):
                        # Interleaved and rotated, so that a change in the machine's load hits every variant.
                        for name in names[r % len(names) :] + names[: r % len(names)]:
                            loader_fed = name in ("b_hand_loop", "c_litvision", "c_data_only")
                            warm = plan["warm"]["loader" if loader_fed else "device"]
                            steps = plan["steps"][bs] * (10 if name.endswith("data_only") else 1)
                            row = case[name]
                            started = time.time()
                            try:
                                out = _variant(name, base, device, bf16, warm, steps, detector)()
                                rate = round(bs * steps / out.pop("seconds"), 1)
                                row.setdefault("samples", []).append(rate)
                                row.update(out)
                                row["images_per_s"] = round(statistics.median(row["samples"]), 1)
                            except Exception as e:  # noqa: BLE001 - one failed variant must not lose the others
                                row["error"] = f"{type(e).__name__}: {e}"[:400]
                            row.update(warm_steps=warm, timed_steps=steps)
                            row["wall_s"] = round(row.get("wall_s", 0) + time.time() - started, 1)
                            print(row, flush=True)
                            if cuda:
                                torch.cuda.empty_cache()
                            if partial:
                                import json

                                Path(partial).write_text(json.dumps(results, indent=1))
                    rows.extend(case.values())
    results["ratios"] = ratios(rows)
    print(table(rows), flush=True)
    return results


def ratios(rows: list[dict]) -> dict:
    """Each variant over the ceiling (a), and the device cache over litvision's default pipeline."""
    out: dict[str, dict] = {}
    by_key: dict[tuple, dict] = {}
    for r in rows:
        if "images_per_s" in r:
            by_key.setdefault((r["model"], r["batch"], r["precision"]), {})[r["variant"]] = r["images_per_s"]
    for (model, bs, precision), v in by_key.items():
        key = f"{model}/{bs}/{precision}"
        a = v.get("a_ceiling")
        trained = [k for k in v if k != "a_ceiling" and not k.endswith("data_only")]
        entry = {f"{k}_over_ceiling": round(v[k] / a, 3) for k in trained if a}
        if v.get("c_litvision") and v.get("d_device_cache"):
            entry["device_cache_over_default"] = round(v["d_device_cache"] / v["c_litvision"], 3)
        if v.get("c_data_only") and v.get("d_data_only"):
            entry["data_only_device_cache_over_default"] = round(v["d_data_only"] / v["c_data_only"], 3)
        if v.get("d_device_cache") and v.get("e_fast"):
            entry["compile_channels_last_gain"] = round(v["e_fast"] / v["d_device_cache"], 3)
        out[key] = entry
    return out


def table(rows: list[dict]) -> str:
    """A compact text table: one line per (model, batch, precision), one column per variant."""
    variants = [
        "a_ceiling",
        "b_hand_loop",
        "c_litvision",
        "d_device_cache",
        "e_fast",
        "c_data_only",
        "d_data_only",
    ]
    lines = [f"{'model/batch/precision':38s}" + "".join(f"{v:>16s}" for v in variants)]
    keys: dict[tuple, dict] = {}
    for r in rows:
        keys.setdefault((r["model"], r["batch"], r["precision"]), {})[r["variant"]] = r.get(
            "images_per_s", "err"
        )
    for (m, b, p), v in keys.items():
        cells = "".join(f"{v.get(k, '-')!s:>16s}" for k in variants)
        lines.append(f"{m + '/' + str(b) + '/' + p:38s}{cells}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    import json

    print(json.dumps(run(), indent=1))
