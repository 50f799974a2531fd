"""CPU time per training step that the Trainer and the task add, on a network too small to cost anything.

    python -m bench step_overhead

On a fast GPU a CIFAR-size step is launch-bound: the GPU waits for the CPU to queue the next kernels,
so whatever Python the Trainer, the task and the callbacks run per step is lost throughput (at
resnet18_cifar10's 10,000-13,000 images/s at batch 128, a step takes 10-13 ms). This measures that
cost directly: one-linear-layer ResNet-18-recipe runs (SGD, cosine per step, train/loss logging,
training accuracy, the default callbacks) on 2-image batches from the device cache, against the
same network and optimizer in a hand-written loop. Reported: milliseconds per step of each, and
`litvision_extra_ms` (their difference). Same process, interleaved rounds; median of each.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

STEPS, WARM, ROUNDS = 200, 20, 3


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
            t0 = time.perf_counter()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
    return (time.perf_counter() - t0) / STEPS * 1e3


def litvision_fit(root: Path, progress_bar: bool) -> float:
    """Milliseconds per step of `litvision train experiment=resnet18_cifar10` with the tiny network."""
    import lightning as L
    import torch

    from bench.bench_throughput import StepClock
    from litvision.build import build_callbacks, build_datamodule, build_loggers, build_task, build_trainer
    from litvision.config import compose

    cfg = compose(
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
            "callbacks.early_stopping=null",
            "callbacks.model_checkpoint=null",
            "logger=csv",
            f"paths.runs_dir={root / 'runs'}",
        ]
    )
    L.seed_everything(0, verbose=False)
    dm, task = build_datamodule(cfg), build_task(cfg)
    task.net = _tiny_net()
    clock = StepClock(WARM, torch.device("cpu"))
    trainer = build_trainer(cfg, callbacks=[*build_callbacks(cfg), clock], loggers=build_loggers(cfg))
    trainer.fit(task, datamodule=dm)
    return (clock.t["end"] - clock.t[WARM]) / STEPS * 1e3


def run() -> dict:
    import torch

    from bench.bench_throughput import write_cifar

    torch.set_num_threads(1)  # Python overhead, not intra-op threading, is what is measured
    samples: dict[str, list[float]] = {"hand_loop": [], "litvision": [], "litvision_progress_bar": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_cifar(root / "cifar10", 500)
        for _ in range(ROUNDS):
            samples["hand_loop"].append(hand_loop())
            samples["litvision"].append(litvision_fit(root, progress_bar=False))
            samples["litvision_progress_bar"].append(litvision_fit(root, progress_bar=True))
    ms = {k: round(statistics.median(v), 3) for k, v in samples.items()}
    result = {
        "ms_per_step": ms,
        "samples_ms": {k: [round(x, 3) for x in v] for k, v in samples.items()},
        "litvision_extra_ms": round(ms["litvision"] - ms["hand_loop"], 3),
        "progress_bar_extra_ms": round(ms["litvision_progress_bar"] - ms["litvision"], 3),
        "steps": STEPS,
    }
    print(result, flush=True)
    return result


if __name__ == "__main__":  # pragma: no cover
    import json

    print(json.dumps(run(), indent=1))
