"""Checkpoint writes that never leave a half-written file, whatever the file systems.

Lightning's `_atomic_save` serialises the checkpoint in memory and writes it through fsspec's
transaction, whose temporary file lives in the system temp dir; `shutil.move` then renames it,
which is atomic only when that temp dir and the run folder share a file system. On clusters /tmp
is node-local and runs/ is on NFS/Lustre, so the move becomes a copy and a SIGKILL mid-copy leaves
a truncated last.ckpt. Here the temporary file sits next to the target: write, fsync, os.replace.

The temporary name comes from `tempfile.mkstemp`, unique even for two processes (or two hosts
with the same pid) saving the same target at once; the last rename wins and each file is whole.

A write the file system refuses (full disk, file-size or quota limit, read-only or forbidden
folder) becomes a `CheckpointWriteError` (a `UserError`) naming the path and the fix; the
temporary file is removed and the previous checkpoint at that path is left as it was.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from litvision.errors import UserError

# What the environment, not the program, got wrong: reported in one line, not as a traceback.
_NO_ROOM = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it; read once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()


class CheckpointWriteError(UserError):
    """A checkpoint the file system refused mid-run. The run folder and its earlier checkpoints are
    valid (an interrupted run to resume), so whoever reports this must not remove the folder."""


def _write_error(target: Path, e: OSError) -> CheckpointWriteError:
    # Only called for the errnos of _NO_ROOM | _NOT_WRITABLE: each has a name and a message.
    reason = os.strerror(e.errno)
    if e.errno in _NO_ROOM:
        fix = "free space (or raise the quota / file-size limit) there, or set paths.runs_dir to a disk with room"
    else:
        fix = "make that folder writable, or set paths.runs_dir to a writable folder"
    return CheckpointWriteError(
        f"Could not write checkpoint {target}: {reason} [{errno.errorcode[e.errno]}]; "
        f"{fix}. Checkpoints written before are intact; resume from {target.parent}/last.ckpt if it exists."
    )


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if "://" in str(path):  # remote storage: fsspec's transaction is the right tool there
            return super().save_checkpoint(checkpoint, path, storage_options)
        target = Path(path)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        tmp: str | None = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            with os.fdopen(fd, "wb") as f:
                f.write(buffer.getbuffer())
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; a checkpoint is as readable as any file
            os.replace(tmp, target)
            tmp = None
        except OSError as e:
            if e.errno in _NO_ROOM | _NOT_WRITABLE:
                raise _write_error(target, e) from None
            raise
        finally:
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
