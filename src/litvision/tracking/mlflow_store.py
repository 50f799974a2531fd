"""The up-front check of an MLflow tracking store, before any run folder exists (lifecycle/checks.py).

Kept apart from mlflow_logger.py, which imports Lightning: the pre-flight checks run before anything
heavy is imported, so that a refusal comes in the time the CLI takes to start. MLflow itself retries
an unusable store for minutes (HTTP retries with back-off, SQLite "unable to open database file")
and fails after the run folder was made; here the store is probed cheaply instead: a file, a
folder, or one GET /health with a 3 s timeout.
"""

from __future__ import annotations

import os
from pathlib import Path

from litvision.errors import UserError

# Database URIs MLflow reaches through SQLAlchemy or a platform SDK: not probed (it would need their drivers).
_UNPROBED_SCHEMES = ("postgresql", "mysql", "mssql", "databricks", "databricks-uc", "uc")
_CONNECT_TIMEOUT_S = 3.0


def _unwritable(path: Path) -> Path | None:
    """The nearest existing folder of `path` if it cannot be written (read-only, or a file in the way);
    lifecycle/checks.unwritable's rule, here because tracking/ sits below the lifecycle's layer."""
    probe = path.expanduser().resolve()
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        return probe
    try:  # os.access says yes to root on a read-only mount; statvfs knows better
        return probe if os.statvfs(probe).f_flag & os.ST_RDONLY else None
    except OSError:
        return None


def _store_problem(uri: str) -> str | None:
    """Why an MLflow store at `uri` cannot be used, or None (probed cheaply: a file, a folder, GET /health)."""
    from urllib.parse import urlparse

    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme == "sqlite":
        if not uri.startswith("sqlite:///"):
            return "a SQLite URI needs three slashes and a path, sqlite:///<file> (sqlite:////abs/path/mlflow.db)"
        db = Path(uri.removeprefix("sqlite:///")).expanduser()
        folder = db.parent.resolve()
        if not folder.is_dir():
            return f"its folder {folder} does not exist"
        # SQLite writes its journal beside the file: the folder must be writable as well as the file.
        if _unwritable(folder) is not None:
            return f"its folder {folder} is read-only"
        if db.exists() and not (db.is_file() and os.access(db, os.W_OK)):
            return f"{db} is read-only or not a file"
        return None
    if scheme in ("http", "https"):
        import urllib.error
        import urllib.request

        if not parsed.hostname:
            return "it names no host"
        # Every MLflow tracking server answers GET /health with 200 "OK"; MLflow's own client would
        # retry a dead server for minutes before its first error.
        health = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(health, timeout=_CONNECT_TIMEOUT_S):
                return None
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):
                return None  # a server that wants credentials: MLflow's client sends them
            return f"the server at {parsed.netloc} is not an MLflow tracking server ({health} gave HTTP {e.code})"
        except (OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            return f"no server answers at {parsed.netloc} ({type(reason).__name__}: {reason})"
    if scheme in ("", "file"):
        folder = Path(parsed.path if scheme == "file" else uri).expanduser()
        probe = _unwritable(folder)
        return None if probe is None else f"{probe} is not writable"
    if scheme.split("+", 1)[0] in _UNPROBED_SCHEMES:
        return None
    return f"MLflow knows no store scheme {scheme!r}: use sqlite:///<file>, http(s)://<server> or a folder"


def check_store(uri: str | None, source: str) -> None:
    """Refuse, in one line and before any run folder exists, a tracking URI whose store cannot work.
    `source` says where the URI came from (the config key or MLFLOW_TRACKING_URI). None (the run
    folder's own store) needs only a writable runs folder, which the pre-flight checks already."""
    if not uri:
        return
    why = _store_problem(str(uri))
    if why is not None:
        raise UserError(
            f"{source}={uri} cannot be used as an MLflow store: {why}. Point it at a writable store or a "
            "running server, leave it unset for the run folder's own store, or use logger=csv."
        )
