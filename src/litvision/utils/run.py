"""Run folders: the resolved config, `summary.json` and provenance (git commit)."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.yaml"


def git_info(root: str | Path) -> dict[str, Any]:
    """Commit and dirty flag of the checkout that ran, or None outside a git checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
                timeout=10,
            ).stdout.strip()
        )
        return {"git_commit": commit, "git_dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}


def atomic_write(path: Path, text: str) -> None:
    """Write-then-rename: a crash never leaves a half-written file that tools would parse.

    The temporary file is unique (two processes writing the same target never share it) and sits
    beside the target, so the rename is atomic. A failed write (full disk, read-only folder) is one
    line naming the path, and whatever was there before is left intact.
    """
    import tempfile

    from litvision.errors import UserError

    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise UserError(
            f"Cannot write {path}: {e.strerror or e}. Free space or fix the folder's permissions; "
            "the file's previous version (if any) is intact."
        ) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def save_config(cfg: DictConfig, run_dir: str | Path) -> Path:
    path = Path(run_dir) / CONFIG_FILE
    atomic_write(path, OmegaConf.to_yaml(cfg, resolve=True))
    return path


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values (config diffs, run comparisons)."""
    if not isinstance(d, dict):
        return {prefix: d} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def to_floats(metrics: dict[str, Any]) -> dict[str, float]:
    """Tensors and numbers -> plain floats (JSON); NaN stays NaN, written as null."""
    out: dict[str, float] = {}
    for k, v in sorted(metrics.items()):
        try:
            out[k] = float(v.item() if hasattr(v, "item") else v)
        except (TypeError, ValueError, RuntimeError):
            continue
    return out


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def write_summary(run_dir: str | Path, summary: dict[str, Any]) -> Path:
    path = Path(run_dir) / SUMMARY_FILE
    atomic_write(path, json.dumps(_json_safe(summary), indent=2) + "\n")
    return path


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / SUMMARY_FILE).read_text())
