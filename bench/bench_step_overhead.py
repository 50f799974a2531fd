"""CPU time per training step that the Trainer and the task add, on a network too small to cost anything.

    python -m bench step_overhead

On a fast GPU a CIFAR-size step is launch-bound: the GPU waits for the CPU to queue the next kernels,
so whatever Python the Trainer, the task and the callbacks run per step is lost throughput (at
resnet18_cifar10's 10,000-13,000 images/s at batch 128, a step takes 10-13 ms). This measures that
cost directly: one-linear-layer ResNet-18-recipe runs (SGD, cosine per step, train/loss logging,
training accuracy, the default callbacks) on 2-image batches from the device cache, against the
same network and optimizer in a hand-written loop, and against a bare Lightning Trainer (the same net,
optimizer, schedule and device-cache batches; logger, progress bar, checkpointing and model summary off;
`bare_lightning_csv_log` adds a CSV logger and `self.log` of the step loss at every step). Reported:
milliseconds per step of each, `litvision_extra_ms` and `bare_lightning_extra_ms` (over the hand loop)
and their ratio. Same process, interleaved rounds; median of each.

    python -m bench step_overhead --small                       # the suite's size (numbers meaningless)
    BENCH_BEFORE_SRC=/path/to/other/checkout/src python -m bench step_overhead   # adds that checkout's litvision
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

STEPS, WARM, ROUNDS = 200, 20, 3


def _cpu_clock() -> Any:
    """A callback that takes this process's CPU time (not wall time: this VM's cores are shared with
    other jobs, whose load would count) over the training steps after the first WARM."""
    from lightning.pytorch import Callback

    class CpuClock(Callback):
        def __init__(self) -> None:
            self.n, self.t = 0, {}

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if self.n == WARM:
                self.t[WARM] = time.process_time()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.n += 1
            if trainer.global_step >= trainer.max_steps:
                self.t["end"] = time.process_time()

    return CpuClock()


def _tiny_net() -> Any:
    import torch

    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))


def hand_loop() -> float:
    """Milliseconds per step of forward, loss, backward, SGD step, zero_grad and an LR-schedule step."""
    import torch
    import torch.nn.functional as F

    net = _tiny_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, STEPS + WARM)
    x, y = torch.randn(2, 3, 32, 32), torch.randint(0, 10, (2,))
    for i in range(STEPS + WARM):
        if i == WARM:
            t0 = time.process_time()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
    return (time.process_time() - t0) / STEPS * 1e3


def bare_lightning(root: Path, log_csv: bool) -> float:
    """Milliseconds per step of the hand loop's work inside a bare Lightning Trainer: the same net,
    optimizer and per-step cosine schedule, the same device-cache batches, timed by the same clock;
    logger, progress bar, checkpointing and model summary off. `log_csv`: a CSV logger and the step
    loss logged with `self.log` every step (Lightning's logging cost, for reference)."""
    import lightning as L
    import torch
    import torch.nn.functional as F

    class Bare(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = _tiny_net()

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            x, y = batch
            loss = F.cross_entropy(self.net(x.float()), y)
            if log_csv:
                self.log("train/loss", loss)
            return loss

        def configure_optimizers(self) -> Any:
            opt = torch.optim.SGD(self.net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, STEPS + WARM)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    from litvision.build import build_datamodule

    L.seed_everything(0, verbose=False)
    # The batches litvision trains on: its device-cache loader (crop, flip, normalise), as the
    # issue's comparison used the same DataLoader for both.
    dm = build_datamodule(_cfg(root, progress_bar=False))
    dm.setup("fit")
    batches = dm.train_dataloader()
    clock = _cpu_clock()
    logger: Any = False
    if log_csv:
        from lightning.pytorch.loggers import CSVLogger

        logger = CSVLogger(root / "bare_runs")
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=WARM + STEPS,
        logger=logger,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[clock],
    )
    trainer.fit(Bare(), train_dataloaders=batches)
    return (clock.t["end"] - clock.t[WARM]) / STEPS * 1e3


def _cfg(root: Path, progress_bar: bool) -> Any:
    """The composed config of `litvision train experiment=resnet18_cifar10` at the bench's size."""
    from litvision.config import compose

    return compose(
        [
            "experiment=resnet18_cifar10",
            "trainer=cpu",
            f"data.root={root / 'cifar10'}",
            "data.download=false",
            "data.batch_size=2",
            "data.device_cache=true",
            f"trainer.max_steps={WARM + STEPS}",
            "trainer.limit_val_batches=0",
            "trainer.num_sanity_val_steps=0",
            f"trainer.enable_progress_bar={str(progress_bar).lower()}",
            "+trainer.enable_model_summary=false",
            # No validation here: early stopping has nothing to watch. The checkpoint callback stays
            # (litvision's, as in every run; null would let Lightning add its own).
            "callbacks.early_stopping=null",
            "logger=csv",
            f"paths.runs_dir={root / 'runs'}",
        ]
    )


def litvision_fit(root: Path, progress_bar: bool) -> float:
    """Milliseconds per step of `litvision train experiment=resnet18_cifar10` with the tiny network."""
    import lightning as L

    from litvision.build import build_callbacks, build_datamodule, build_loggers, build_task, build_trainer

    cfg = _cfg(root, progress_bar)
    L.seed_everything(0, verbose=False)
    dm, task = build_datamodule(cfg), build_task(cfg)
    task.net = _tiny_net()
    clock = _cpu_clock()
    trainer = build_trainer(cfg, callbacks=[*build_callbacks(cfg), clock], loggers=build_loggers(cfg))
    trainer.fit(task, datamodule=dm)
    return (clock.t["end"] - clock.t[WARM]) / STEPS * 1e3


def _litvision_fit_elsewhere(src: str, root: Path) -> float:
    """`litvision_fit` with the litvision package of another checkout's `src` (BENCH_BEFORE_SRC), in a
    fresh interpreter: the "before" of a change, measured in the same run as its "after"."""
    import os
    import subprocess
    import sys

    code = (
        "import sys, torch; from pathlib import Path; torch.set_num_threads(1); "
        "import bench.bench_step_overhead as b; b.STEPS, b.WARM = int(sys.argv[2]), int(sys.argv[3]); "
        "print('MS', b.litvision_fit(Path(sys.argv[1]), False))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, str(Path(__file__).resolve().parents[1])])}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(root), str(STEPS), str(WARM)],
        env=env,
        capture_output=True,
        text=True,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("MS ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"litvision_fit with {src} failed:\n{proc.stderr[-3000:]}")
    return float(lines[-1].split()[1])


def run(small: bool = False) -> dict:
    """`small`: the suite's size (one round of 40 steps); the figures then mean nothing."""
    import torch

    from bench.bench_throughput import write_cifar

    global STEPS, WARM
    rounds = 1 if small else ROUNDS
    if small:
        STEPS, WARM = 40, 5
    torch.set_num_threads(1)  # Python overhead, not intra-op threading, is what is measured
    names = ("hand_loop", "bare_lightning", "bare_lightning_csv_log", "litvision", "litvision_progress_bar")
    # BENCH_BEFORE_SRC=<other checkout>/src adds `litvision_before`: that checkout's litvision, same run.
    before_src = os.environ.get("BENCH_BEFORE_SRC")
    if before_src:
        names = (*names, "litvision_before")
    samples: dict[str, list[float]] = {k: [] for k in names}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_cifar(root / "cifar10", 500)
        for _ in range(rounds):
            samples["hand_loop"].append(hand_loop())
            samples["bare_lightning"].append(bare_lightning(root, log_csv=False))
            samples["bare_lightning_csv_log"].append(bare_lightning(root, log_csv=True))
            samples["litvision"].append(litvision_fit(root, progress_bar=False))
            samples["litvision_progress_bar"].append(litvision_fit(root, progress_bar=True))
            if before_src:
                samples["litvision_before"].append(_litvision_fit_elsewhere(before_src, root))
    ms = {k: round(statistics.median(v), 3) for k, v in samples.items()}
    bare_extra = ms["bare_lightning"] - ms["hand_loop"]
    result = {
        "ms_per_step": ms,
        "samples_ms": {k: [round(x, 3) for x in v] for k, v in samples.items()},
        "litvision_extra_ms": round(ms["litvision"] - ms["hand_loop"], 3),
        "bare_lightning_extra_ms": round(bare_extra, 3),
        "bare_lightning_csv_log_extra_ms": round(ms["bare_lightning_csv_log"] - ms["hand_loop"], 3),
        # The target: litvision's extra <= 1.25x bare Lightning's.
        "litvision_extra_over_bare_lightning_extra": round(
            (ms["litvision"] - ms["hand_loop"]) / bare_extra, 3
        )
        if bare_extra > 0
        else None,
        "progress_bar_extra_ms": round(ms["litvision_progress_bar"] - ms["litvision"], 3),
        **(
            {
                "before_src": before_src,
                "litvision_before_extra_ms": round(ms["litvision_before"] - ms["hand_loop"], 3),
                "litvision_before_extra_over_bare_lightning_extra": round(
                    (ms["litvision_before"] - ms["hand_loop"]) / bare_extra, 3
                ),
            }
            if before_src and bare_extra > 0
            else {}
        ),
        "steps": STEPS,
    }
    print(result, flush=True)
    return result


if __name__ == "__main__":  # pragma: no cover
    import json

    print(json.dumps(run(), indent=1))
