"""Checkpoint writes that never leave a half-written file, whatever the file systems.

Lightning's `_atomic_save` serialises the checkpoint in memory and writes it through fsspec's
transaction, whose temporary file lives in the system temp dir; `shutil.move` then renames it,
which is atomic only when that temp dir and the run folder share a file system. On clusters /tmp
is node-local and runs/ is on NFS/Lustre, so the move becomes a copy and a SIGKILL mid-copy leaves
a truncated last.ckpt. Here the temporary file sits next to the target: write, fsync, os.replace.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        target = Path(path)
        if "://" in str(path):  # remote storage: fsspec's transaction is the right tool there
            return super().save_checkpoint(checkpoint, path, storage_options)
        target.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(buffer.getbuffer())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
