"""The hardware a run asks for, and the processes it runs in: hardware checks (GPUs that are not
there), SLURM plugins, DDP workers under Hydra multirun and the process's global rank. (Was
`litvision.scale`, a name that promised learning-rate scaling; that import path still works.)
Learning-rate scaling with the global batch happens in the task's optimizer set-up
(`litvision.tasks.optim.lr_scale`), where the Trainer's world size is known.

    litvision train experiment=digits_cnn trainer=ddp_cpu                  # 2 CPU processes (gloo)
    litvision train experiment=X trainer=ddp trainer.devices=4 scale_lr=linear base_batch_size=256
    make submit EXP=X NODES=2 GPUS=8 PARTITION=gpu TIME=12:00:00          # see litvision.submit

Global batch = data.batch_size (per device) x devices x num_nodes x accumulate_grad_batches.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from omegaconf import DictConfig, open_dict

from litvision.errors import UserError

GPU_ACCELERATORS = ("gpu", "cuda")


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


# -- plugins, DDP workers -------------------------------------------------------------------
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


def process_rank() -> int:
    """Zero exactly when this process is global rank zero, from the launcher's environment (0 when
    launched by hand): the global rank where the launcher sets one, else the local rank, else the node
    rank. A general cluster (Lightning's own environment) starts each node's first process with only
    NODE_RANK set: it is rank zero on node 0 alone, and Lightning starts the node's other processes."""
    for key in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "JSM_NAMESPACE_RANK", "NODE_RANK", "GROUP_RANK"):
        value = os.environ.get(key)
        if value not in (None, ""):
            try:
                rank = int(value)
            except ValueError:
                continue
            if rank != 0 or key not in ("LOCAL_RANK", "NODE_RANK"):
                return rank
    return 0
