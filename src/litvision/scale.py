"""Scale-out glue between the config, the hardware and Lightning: hardware checks, learning-rate
scaling with the global batch, SLURM plugins, auto-resume and DDP workers under Hydra multirun.

    litvision train experiment=digits_cnn trainer=ddp_cpu                  # 2 CPU processes (gloo)
    litvision train experiment=X trainer=ddp trainer.devices=4 scale_lr=linear base_batch_size=256
    make submit EXP=X NODES=2 GPUS=8 PARTITION=gpu TIME=12:00:00          # see litvision.submit

Global batch = data.batch_size (per device) x devices x num_nodes x accumulate_grad_batches.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from litvision.errors import UserError

GPU_ACCELERATORS = ("gpu", "cuda")
RESUME_CHECKPOINT = "checkpoints/last.ckpt"


# -- bad input --------------------------------------------------------------------------------------
def _count(devices: Any) -> int | None:
    """How many devices a `trainer.devices` value asks for (None: 'auto' / -1, i.e. all there are)."""
    if isinstance(devices, int):
        return None if devices == -1 else devices
    if isinstance(devices, str):
        d = devices.strip()
        if d in ("auto", "-1"):
            return None
        if "," in d:
            return len([x for x in d.split(",") if x.strip()])
        return int(d) if d.isdigit() else None
    try:
        return len(list(devices))
    except TypeError:
        return None


def check_hardware(cfg: DictConfig) -> None:
    """GPU presets on a machine without (enough) GPUs fail here in one line, before any run starts."""
    trainer = cfg.get("trainer") or {}
    accelerator = str(trainer.get("accelerator", "auto")).lower()
    if accelerator not in GPU_ACCELERATORS:
        return
    import torch

    have = torch.cuda.device_count() if torch.cuda.is_available() else 0
    want = _count(trainer.get("devices", 1))
    if have == 0:
        raise UserError(
            f"trainer.accelerator={accelerator} but this machine has no CUDA GPU "
            "(torch.cuda.is_available() is False): use trainer=cpu, or trainer=ddp_cpu for several CPU processes."
        )
    if want is not None and want > have:
        raise UserError(
            f"trainer.devices={trainer.get('devices')} but this machine has {have} GPU(s): "
            f"set trainer.devices={have} (or trainer.devices=auto)."
        )


def check_hardware_overrides(overrides: list[str], config_name: str = "train") -> None:
    """`check_hardware` on the config a command line composes (the CLI, before Hydra makes a folder)."""
    from litvision.config import compose

    check_hardware(compose(overrides, config_name))


# -- learning rate and global batch -----------------------------------------------------------------
def global_batch_size(cfg: DictConfig, world_size: int) -> int | None:
    per_device = (cfg.get("data") or {}).get("batch_size")
    if per_device is None:
        return None
    accumulate = int((cfg.get("trainer") or {}).get("accumulate_grad_batches", 1) or 1)
    return int(per_device) * int(world_size) * accumulate


def scale_learning_rate(cfg: DictConfig, world_size: int) -> dict[str, Any]:
    """Apply `scale_lr: linear | sqrt` to model.optimizer.lr (and absolute per-group lrs) in place.

    The configured lr is the one tuned for `base_batch_size` (global); with `scale_lr: linear` a run
    on more devices or nodes multiplies it by global_batch / base_batch_size (Goyal et al., 2017);
    `sqrt` uses the square root of that ratio (common for Adam-type optimizers).
    """
    gbs = global_batch_size(cfg, world_size)
    info: dict[str, Any] = {"world_size": int(world_size), "global_batch_size": gbs, "lr_scale": 1.0}
    rule = cfg.get("scale_lr")
    if not rule:
        return info
    if rule not in ("linear", "sqrt"):
        raise UserError(
            f"scale_lr={rule} is not a scaling rule: use scale_lr=linear, scale_lr=sqrt or scale_lr=null."
        )
    base = cfg.get("base_batch_size")
    if not base or gbs is None:
        raise UserError(
            "scale_lr needs base_batch_size (the global batch the configured lr was tuned for) and data.batch_size: "
            "e.g. scale_lr=linear base_batch_size=256."
        )
    ratio = gbs / float(base)
    factor = ratio if rule == "linear" else math.sqrt(ratio)
    model = cfg.model
    with open_dict(model):
        if model.get("optimizer") is not None and model.optimizer.get("lr") is not None:
            model.optimizer.lr = float(model.optimizer.lr) * factor
        for group in (model.get("param_groups") or {}).values():
            if group is not None and group.get("lr") is not None:
                group.lr = float(group.lr) * factor
    info.update(lr_scale=factor, scale_lr=rule, base_batch_size=int(base))
    return info


# -- plugins, resume, DDP workers -------------------------------------------------------------------
def trainer_plugins(cfg: DictConfig) -> list[Any]:
    """Atomic checkpoint writes always; under SLURM, Lightning's auto-requeue off (see callbacks.preemption)."""
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    from litvision.utils.checkpoint_io import AtomicCheckpointIO

    plugins: list[Any] = [AtomicCheckpointIO()]
    if SLURMEnvironment.detect():
        # The PreemptionCheckpoint callback checkpoints at a batch boundary and requeues through
        # submitit; Lightning's own handler would save inside the signal handler and requeue a second time.
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return plugins


def resume_checkpoint(cfg: DictConfig, run_dir: Path) -> str | None:
    """The checkpoint to start from: `ckpt_path` if given, else the run folder's own last.ckpt.

    A fresh run folder has none; one exists when SLURM requeued a pre-empted job (or a job is
    re-run in its folder), which then continues where it stopped.
    """
    if cfg.get("ckpt_path"):
        return str(cfg.ckpt_path)
    if not cfg.get("train", True):
        return None
    last = run_dir / RESUME_CHECKPOINT
    return str(last) if last.is_file() else None


def prepare_ddp_workers() -> None:
    """Make Lightning's DDP re-launch of this command land in this job's run folder.

    Lightning starts each extra local rank as `python -m <app> <sys.argv[1:]> hydra.run.dir=<run.dir>`.
    Under `-m` (multirun) that would re-run the whole sweep in every worker, and run.dir is not the
    sweep job's folder. So for a multirun job, sys.argv becomes this job's own overrides and run.dir
    its output folder: one run folder per job, whatever the number of processes.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import read_write

    if not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return
    output_dir = hc.runtime.output_dir
    with read_write(hc), open_dict(hc):
        hc.run.dir = output_dir
    sys.argv = [sys.argv[0], *[o for o in hc.overrides.task if not o.startswith("hydra/launcher")]]


def release_ddp_launch(trainer: Any) -> None:
    """After a run whose Trainer started the DDP workers itself, drop its process group and the
    variables Lightning's launcher set (LOCAL_RANK, MASTER_PORT, ...). Otherwise the next job of a
    multirun in this process would think its workers were started externally and wait for them."""
    launcher = getattr(trainer.strategy, "launcher", None)
    procs = getattr(launcher, "procs", None)
    if not procs:
        return
    for p in procs:
        p.wait()
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    for key in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        os.environ.pop(key, None)
