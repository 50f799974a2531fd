"""Moved to `litvision.hardware` (hardware checks, SLURM plugins, DDP workers, process rank); this
old import path stays for code written against it."""

from litvision.hardware import (
    check_hardware,
    prepare_ddp_workers,
    process_rank,
    release_ddp_launch,
    trainer_plugins,
)

__all__ = ["check_hardware", "prepare_ddp_workers", "process_rank", "release_ddp_launch", "trainer_plugins"]
