"""AtomicCheckpointIO in-process, against real file-system failures: the file-size limit (EFBIG),
a folder even root may not write (EACCES under /sys), a parent that is a file, remote paths, and
the permissions of what it writes. Written against the survivors of `make mutate` on
utils/checkpoint_io.py; tests/test_checkpoint_faults.py has the end-to-end runs."""

from __future__ import annotations

import errno
import os
import resource
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from litvision.errors import UserError
from litvision.utils.checkpoint_io import AtomicCheckpointIO, CheckpointWriteError, _read_umask


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@contextmanager
def file_size_limit(max_bytes: int):
    """RLIMIT_FSIZE for this process: write() past it fails with EFBIG (SIGXFSZ ignored), as on a full disk."""
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)


def test_save_creates_the_folder_and_writes_a_whole_file_readable_as_any_other(tmp_path: Path) -> None:
    """Catches: the parent folder not created, a temp file left behind or written elsewhere, and the
    file kept at mkstemp's 0600 (or given other bits than 0666 minus the umask)."""
    target = tmp_path / "run" / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 3, "w": torch.arange(5)}, target)
    state = _load(target)
    assert state["step"] == 3 and torch.equal(state["w"], torch.arange(5))
    assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]
    probe = Path(tempfile.mkstemp(dir=tmp_path)[1])
    os.chmod(probe, 0o666 & ~_read_umask())
    assert (target.stat().st_mode & 0o777) == (probe.stat().st_mode & 0o777) != 0o600


def test_reading_the_umask_leaves_it_as_it_was() -> None:
    """Catches: the umask not restored after reading it (later files would get the wrong permissions)
    or another value returned than the one in force."""
    before = os.umask(0o027)
    try:
        assert _read_umask() == 0o027
        assert os.umask(0o027) == 0o027
    finally:
        os.umask(before)


def test_file_size_limit_is_one_line_and_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    """Catches: EFBIG (the disk-full family) let through as a traceback, the message losing the path,
    the reason, the errno name or the fix, the temp file left behind, and the old file replaced."""
    io, target = AtomicCheckpointIO(), tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"step": 1}, target)
    with file_size_limit(50_000), pytest.raises(CheckpointWriteError) as e:
        io.save_checkpoint({"step": 2, "big": torch.zeros(100_000)}, target)
    assert str(e.value) == (
        f"Could not write checkpoint {target}: File too large [EFBIG]; free space (or raise the quota / "
        "file-size limit) there, or set paths.runs_dir to a disk with room. Checkpoints written before are "
        f"intact; resume from {target.parent}/last.ckpt if it exists."
    )
    assert isinstance(e.value, UserError) and e.value.__cause__ is None and e.value.__suppress_context__
    assert _load(target) == {"step": 1}
    assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]


def _root_cannot_write(folder: str) -> bool:
    try:
        os.close(tempfile.mkstemp(dir=folder)[0])
    except OSError as e:
        return e.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
    return False


@pytest.mark.skipif(not _root_cannot_write("/sys/kernel"), reason="/sys/kernel is writable here")
def test_a_folder_nobody_may_write_is_one_line_with_the_writable_fix() -> None:
    """Catches: EACCES/EPERM/EROFS let through as a traceback, and the not-writable case given the
    disk-full fix."""
    target = Path("/sys/kernel/last.ckpt")
    with pytest.raises(CheckpointWriteError) as e:
        AtomicCheckpointIO().save_checkpoint({"step": 1}, target)
    message = str(e.value)
    assert message.startswith(f"Could not write checkpoint {target}: ")
    assert "make that folder writable, or set paths.runs_dir to a writable folder." in message
    assert "free space" not in message and ("[EACCES]" in message or "[EPERM]" in message)


def test_other_os_errors_stay_bugs_with_their_traceback(tmp_path: Path) -> None:
    """Catches: every OSError turned into the one-line user error (a parent that is a file is a bug of
    the caller, not a full disk)."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError) as e:
        AtomicCheckpointIO().save_checkpoint({"step": 1}, tmp_path / "file" / "last.ckpt")
    assert not isinstance(e.value, UserError) and e.value.errno in (errno.EEXIST, errno.ENOTDIR)


def test_remote_paths_go_through_fsspec() -> None:
    """Catches: a URL treated as a local path (a folder named 'memory:' would appear in the working
    directory) instead of going through Lightning's fsspec writer."""
    import fsspec

    url = "memory://litvision-test/checkpoints/last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 7}, url)
    with fsspec.open(url, "rb") as f:
        assert torch.load(f, weights_only=True) == {"step": 7}
    assert not Path("memory:").exists()
