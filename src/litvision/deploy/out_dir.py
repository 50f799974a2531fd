"""The folder an export writes: its own, like every run's, checked before any work is done.

    runs/<experiment>/export/<stamp>/      the default, beside the source run (a fresh folder)
    --out-dir <folder>                      a new or empty folder; a non-empty one only with --force

A run folder (one holding a run's config.yaml, summary.json, checkpoints/ or .hydra/) is never an
export's folder, nor is any folder inside one: a finished run is read-only. With --force, a
previous export in the folder is replaced: the files its export.json lists and export.json itself
are removed before the new export writes, so the folder never holds a model without its record.
Other files there are left alone.

Every file the export writes is listed in export.json (name, bytes, sha256).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from litvision.errors import UserError

EXPORT_JSON = "export.json"
# What marks a folder as a run's (lifecycle/run_folder.py: config.yaml, .hydra/, checkpoints/,
# summary.json).
RUN_MARKS = ("config.yaml", "summary.json", "checkpoints", ".hydra")


@dataclass
class OutDir:
    path: Path
    force: bool = False
    #: The outermost folder this export made (removed again if the export fails before export.json).
    made: Path | None = None
    #: name -> (size, mtime_ns) of the files there before the export: what it wrote differs.
    before: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: export.json is written: the folder is complete (a parity failure keeps it, to show it).
    recorded: bool = False

    # The lifecycle's artifact folder (litvision.lifecycle.spec.ArtifactFolder): the command makes
    # it when it is ready to write; the lifecycle discards it when the command fails before its record.
    def make(self) -> None:
        make(self)

    def discard(self) -> None:
        if not self.recorded:
            discard(self)


def _marks(folder: Path) -> list[str]:
    return [m for m in RUN_MARKS if os.path.lexists(folder / m)]


def _owning_run(path: Path) -> Path | None:
    """The run folder `path` lies inside (a parent with config.yaml and another mark of a run:
    a stray config.yaml in a home folder does not make it a run)."""
    for parent in path.parents:
        marks = _marks(parent)
        if "config.yaml" in marks and len(marks) >= 2:
            return parent
    return None


def default_out_dir(run_dir: Path | None, checkpoint: Path) -> Path:
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    base = run_dir.parent if run_dir is not None else checkpoint.parent
    return base / "export" / stamp


def plan_out_dir(out_dir: str | Path | None, run_dir: Path | None, checkpoint: Path, force: bool) -> OutDir:
    """The export's folder, refused in one line (a run folder, a non-empty folder without --force,
    a file in the way, a read-only place) before anything is loaded or written."""
    from litvision.lifecycle.checks import unwritable

    given = out_dir is not None
    path = Path(out_dir).expanduser() if given else default_out_dir(run_dir, checkpoint)
    path = path.absolute()
    what = f"--out-dir {path}" if given else f"the export folder {path}"
    if os.path.lexists(path) and not path.is_dir():
        raise UserError(f"{what} is a file, not a folder; name a new or empty folder for the export.")
    if path.is_dir():
        marks = _marks(path)
        if marks:
            raise UserError(
                f"{what} is a run folder (it holds {', '.join(marks)}), and a run folder is never an "
                "export's folder; leave --out-dir out (runs/<experiment>/export/<stamp>/) or name a new folder."
            )
    run = _owning_run(path)
    if run is not None:
        raise UserError(
            f"{what} is inside the run folder {run}, which is read-only once finished; leave --out-dir "
            "out (runs/<experiment>/export/<stamp>/) or name a folder outside the run."
        )
    blocker = unwritable(path)
    if blocker is not None:
        why = "a file is in the way" if not blocker.is_dir() else "it is read-only"
        raise UserError(
            f"Cannot write {what}: {blocker} is not a writable folder ({why}); name another --out-dir."
        )
    if path.is_dir() and any(path.iterdir()) and not force:
        held = sorted(p.name for p in path.iterdir())
        shown = ", ".join(held[:4]) + (", ..." if len(held) > 4 else "")
        raise UserError(
            f"{what} is not empty (it holds {shown}); name a new or empty folder, or pass --force to "
            "replace a previous export there."
        )
    return OutDir(path, force=force)


def make(out: OutDir) -> None:
    """Create the folder (and its missing parents), or say in one line why it cannot be made."""
    existed = out.path.is_dir()
    top = out.path
    while top.parent != top and not os.path.lexists(top.parent):
        top = top.parent
    try:
        out.path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(
            f"Cannot create the export folder {out.path}: {e.strerror}; name another --out-dir."
        ) from None
    out.made = None if existed else top
    if out.force:
        _remove_previous_export(out.path)
    out.before = _snapshot(out.path)


def _remove_previous_export(folder: Path) -> None:
    record = folder / EXPORT_JSON
    if not record.is_file():
        return
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        data = {}
    names = [f.get("name") for f in data.get("files") or [] if isinstance(f, dict)]
    if data.get("file"):  # export.json of litvision before the files list: one model file
        names.append(Path(str(data["file"])).name)
    for name in {n for n in names if isinstance(n, str)}:
        target = (folder / name).resolve()
        if target.parent == folder.resolve() and target.is_file():
            target.unlink()
    record.unlink()


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for p in folder.rglob("*"):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(folder))] = (st.st_size, st.st_mtime_ns)
    return out


def written_files(out: OutDir) -> list[dict[str, Any]]:
    """name, bytes and sha256 of every file the export wrote (new or changed since `make`)."""
    files = []
    for name, stamp in sorted(_snapshot(out.path).items()):
        if name == EXPORT_JSON or out.before.get(name) == stamp:
            continue
        digest = hashlib.sha256()
        with open(out.path / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        files.append({"name": name, "bytes": stamp[0], "sha256": digest.hexdigest()})
    return files


def discard(out: OutDir) -> None:
    """A failed export leaves nothing behind: the folder it made, or in a folder that was there,
    the files it wrote."""
    if out.made is not None:
        shutil.rmtree(out.made, ignore_errors=True)
        return
    for name, stamp in _snapshot(out.path).items():
        if out.before.get(name) != stamp:
            (out.path / name).unlink(missing_ok=True)
