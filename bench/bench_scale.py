"""Scale-out on the CPU: wall time per epoch of digits_cnn at 1 vs 2 DDP processes (gloo) and at
32-bit vs bf16-mixed, as ratios measured in the same run.

    python -m bench scale          # -> bench/results/scale.json

Each configuration trains through the real CLI (a subprocess, as users run it) for EPOCHS epochs at
the same global batch (64); per-epoch time is (t(EPOCHS) - t(1)) / (EPOCHS - 1) from the run's
metrics, so process start-up, imports and the DDP rendezvous are left out. On a 2-core machine
two processes share the cores, so the DDP ratio shows overhead, not speed-up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 4
COMMON = [
    "experiment=digits_cnn",
    f"trainer.max_epochs={EPOCHS}",
    "logger=csv",
    "test=false",
    "callbacks.rich_progress_bar=null",
    "callbacks.model_summary=null",
    "callbacks.early_stopping=null",
]
CONFIGS = {
    "cpu_1proc_fp32": ["trainer=cpu", "data.batch_size=64"],
    "cpu_2proc_fp32": ["trainer=ddp_cpu", "trainer.devices=2", "data.batch_size=32"],
    "cpu_1proc_bf16": ["trainer=cpu", "data.batch_size=64", "trainer.precision=bf16-mixed"],
}


def _epoch_times(run: Path) -> list[float]:
    """Wall-clock end of each training epoch, written by _scale_clock.EpochClock."""
    return sorted(float(line) for line in (run / "epoch_ends.txt").read_text().split())


def _run(name: str, args: list[str], runs: Path) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "bench")]),
        "LITVISION_ROOT": str(ROOT),
    }
    started = time.time()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "litvision.train",
            *COMMON,
            *args,
            f"paths.runs_dir={runs / name}",
            "+callbacks.clock._target_=_scale_clock.EpochClock",
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")
    (run,) = [p.parent for p in (runs / name).rglob("epoch_ends.txt")]
    ends = _epoch_times(run)
    per_epoch = (ends[-1] - ends[0]) / (len(ends) - 1)
    return {"s_per_epoch": round(per_epoch, 3), "process_wall_s": round(time.time() - started, 1)}


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        results = {name: _run(name, args, Path(tmp)) for name, args in CONFIGS.items()}
    base = results["cpu_1proc_fp32"]["s_per_epoch"]
    return {
        "epochs": EPOCHS,
        "global_batch": 64,
        "configs": results,
        "ratios": {
            "ddp_2proc_over_1proc_time_per_epoch": round(results["cpu_2proc_fp32"]["s_per_epoch"] / base, 3),
            "bf16_over_fp32_time_per_epoch": round(results["cpu_1proc_bf16"]["s_per_epoch"] / base, 3),
        },
    }
