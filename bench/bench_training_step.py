"""Training-step cost of digits_cnn through litvision vs a hand-written PyTorch loop.

Same model class and init seed, same data loader, batch size, optimizer, LR schedule
and number of steps, in one process. Validation and checkpoint writing are switched
off on the litvision side so that both sides time training steps only; litvision
keeps its logging (CSV + LR monitor) and training metrics. The two are interleaved
and repeated, and the median is compared, so background load hits both alike.

Also reports the wall time of `make train` (the default experiment, end to end, in a
fresh process) and of `litvision-train --help` (CLI start-up).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 4
REPEATS = 5


def _cfg(runs: Path):
    from litvision.config import compose

    return compose(
        [
            "experiment=digits_cnn",
            f"paths.runs_dir={runs}",
            f"trainer.max_epochs={EPOCHS}",
            "trainer.limit_val_batches=0",
            "trainer.num_sanity_val_steps=0",
            "+trainer.enable_checkpointing=false",
            "trainer.enable_progress_bar=false",
            "+trainer.enable_model_summary=false",
            "callbacks=none",
            "+callbacks.lr_monitor._target_=lightning.pytorch.callbacks.LearningRateMonitor",
            "logger=csv",
        ]
    )


def time_litvision(runs: Path) -> tuple[float, int]:
    import lightning as L
    from omegaconf import OmegaConf

    from litvision.build import build_datamodule, build_task, build_trainer

    cfg = _cfg(runs)
    OmegaConf.resolve(cfg)
    L.seed_everything(cfg.seed, verbose=False)
    dm, task = build_datamodule(cfg), build_task(cfg)
    trainer = build_trainer(cfg)
    dm.setup("fit")
    start = time.perf_counter()
    trainer.fit(task, datamodule=dm)
    return time.perf_counter() - start, trainer.global_step


def time_handwritten(runs: Path) -> tuple[float, int]:
    """The classic script: zero_grad / forward / loss / backward / step, scheduler per step."""
    import lightning as L
    import torch
    import torch.nn.functional as F
    from omegaconf import OmegaConf

    from litvision.build import build_datamodule
    from litvision.models.weights import build_net
    from litvision.tasks.optim import build_scheduler

    cfg = _cfg(runs)
    OmegaConf.resolve(cfg)
    L.seed_everything(cfg.seed, verbose=False)
    dm = build_datamodule(cfg)
    dm.setup("fit")
    model = build_net(OmegaConf.to_container(cfg.model.net))
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.model.optimizer.lr, weight_decay=cfg.model.optimizer.weight_decay
    )
    loader = dm.train_dataloader()
    sched = build_scheduler(opt, total_steps=EPOCHS * len(loader), max_epochs=EPOCHS, **cfg.model.scheduler)
    steps = 0
    start = time.perf_counter()
    for epoch in range(EPOCHS):
        model.train()
        loader.sampler.set_epoch(epoch)
        for x, y in loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            sched.step()
            steps += 1
    return time.perf_counter() - start, steps


def _wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def run() -> dict:
    lit, hand = [], []
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        time_litvision(runs)  # warm-up: imports, allocator, thread pools
        time_handwritten(runs)
        for _ in range(REPEATS):
            t, lit_steps = time_litvision(runs)
            lit.append(t)
            t, hand_steps = time_handwritten(runs)
            hand.append(t)
        assert lit_steps == hand_steps, (lit_steps, hand_steps)
        help_s = _wall([sys.executable, "-m", "litvision.train", "--help"])
        train_s = _wall([sys.executable, "-m", "litvision.train", f"paths.runs_dir={runs}"])
    lit_step = statistics.median(lit) / lit_steps
    hand_step = statistics.median(hand) / hand_steps
    ratio = lit_step / hand_step
    return {
        "steps_per_run": lit_steps,
        "repeats": REPEATS,
        "litvision_ms_per_step": round(1000 * lit_step, 3),
        "handwritten_ms_per_step": round(1000 * hand_step, 3),
        "ratio_litvision_over_handwritten": round(ratio, 3),
        "target_ratio_at_most": 1.05,
        "meets_target": ratio <= 1.05,
        "make_train_wall_s": round(train_s, 1),
        "train_help_wall_s": round(help_s, 2),
    }
