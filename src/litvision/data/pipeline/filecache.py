"""A per-file result cache for the set-up checks, so that a second run over an unchanged folder reads no image.

The file check (header + end marker) and the duplicate check (a hash of the decoded pixels) read
every image at every start: at a million files that is a full read of the dataset before the first
step of every run, resume and sweep job. Their results depend only on the file's bytes, so they are
kept here keyed by the file's absolute path, size and modification time (nanoseconds), the key
`git status` and `make` trust: a file that changes or is added misses the cache and is read again,
alone; an unchanged one costs one `stat`.

Where: one SQLite file, `$LITVISION_CACHE_DIR/file_checks.sqlite` (default
`$XDG_CACHE_HOME/litvision`, else `~/.cache/litvision`), not the dataset folder, which may be
read-only or shared. `LITVISION_CACHE_DIR=off` turns it off. SQLite's write-ahead log and
transactions make concurrent runs (a sweep's jobs, DDP ranks) safe: a writer waits for the other
(busy timeout), a reader never sees half a write. A cache that cannot be opened or written (a
read-only home, a corrupt file) is skipped with one log line: the checks then read the files, as
they would without it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# checks: the file check's per file; hashes: the duplicate check's per file; results: the duplicate
# check's whole result for a set of unchanged files (keyed by a digest of their paths, sizes and mtimes).
TABLES = ("checks", "hashes", "results")
_CHUNK = 500  # parameters per `IN (...)` query: below SQLite's smallest variable limit (999)
_TIMEOUT_S = 60.0


def cache_dir() -> Path | None:
    """Where litvision keeps its caches; None when `LITVISION_CACHE_DIR=off`."""
    env = os.environ.get("LITVISION_CACHE_DIR")
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "false") else Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "litvision"


def file_key(path: str | Path) -> tuple[int, int] | None:
    """(size, mtime_ns) of a file, or None when it cannot be stat'ed (the check then reads it and says why)."""
    if _stat_memo is not None:
        key = os.fspath(path)
        if key not in _stat_memo:
            _stat_memo[key] = _stat(key)
        return _stat_memo[key]
    return _stat(path)


def file_keys(paths: Sequence[str]) -> list[tuple[int, int] | None]:
    """`file_key` of each path (one loop, not a call per path: a million of them at every start)."""
    memo = _stat_memo
    if memo is None:
        return [_stat(p) for p in paths]
    missing = [p for p in paths if p not in memo]
    memo.update(zip(missing, map(_stat, missing)))
    return [memo[p] for p in paths]


def _stat(path: str | Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


_stat_memo: dict[str, tuple[int, int] | None] | None = None


@contextlib.contextmanager
def stat_once() -> Iterator[None]:
    """Inside the block each file is stat'ed once: one set-up's file check and duplicate check validate
    their entries with the same (size, mtime_ns), and a million-file folder costs a million stats, not
    two. Outside it (and in the next set-up) every call stats again."""
    global _stat_memo
    outer = _stat_memo
    if outer is None:
        _stat_memo = {}
    try:
        yield
    finally:
        if outer is None:
            _stat_memo = None


class FileCache:
    """`table` maps (absolute path, size, mtime_ns) -> a JSON value. Use `cached(...)` below."""

    def __init__(self, table: str, folder: Path | None = None) -> None:
        if table not in TABLES:
            raise ValueError(f"unknown cache table {table!r}")
        self.table = table
        self.folder = folder if folder is not None else cache_dir()
        self._db: sqlite3.Connection | None = None
        if self.folder is None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.folder / "file_checks.sqlite", timeout=_TIMEOUT_S)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {table} "
                "(path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, value TEXT) WITHOUT ROWID"
            )
            db.commit()
            self._db = db
        except (OSError, sqlite3.Error) as e:
            log.info("File-check cache off (%s): %s", self.folder, e)

    @property
    def enabled(self) -> bool:
        return self._db is not None

    def get(self, paths: Sequence[str], keys: Sequence[tuple[int, int] | None]) -> list[Any]:
        """The cached value of each path whose size and mtime still match; `MISS` elsewhere."""
        out: list[Any] = [MISS] * len(paths)
        if self._db is None:
            return out
        where = {p: i for i, p in enumerate(paths)}
        try:
            for lo in range(0, len(paths), _CHUNK):
                chunk = paths[lo : lo + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT path, size, mtime_ns, value FROM {self.table} WHERE path IN ({marks})", chunk
                )
                for path, size, mtime, value in rows:
                    i = where[path]
                    if keys[i] == (size, mtime):
                        out[i] = _loads(value)
        except sqlite3.Error as e:
            log.info("File-check cache unreadable (%s): %s", self.folder, e)
            return [MISS] * len(paths)
        return out

    def put(self, rows: Sequence[tuple[str, tuple[int, int], Any]]) -> None:
        """Store (path, (size, mtime_ns), value) rows in one transaction (all or none)."""
        if self._db is None or not rows:
            return
        try:
            with self._db:
                self._db.executemany(
                    f"INSERT OR REPLACE INTO {self.table} (path, size, mtime_ns, value) VALUES (?, ?, ?, ?)",
                    [(p, k[0], k[1], json.dumps(v)) for p, k, v in rows],
                )
        except sqlite3.Error as e:
            log.info("File-check cache not written (%s): %s", self.folder, e)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _loads(value: str) -> Any:
    """json.loads, without the parser for the two kinds a million rows hold: null (a good file check)
    and a string with nothing to unescape (a hash)."""
    if value == "null":
        return None
    if len(value) > 1 and value[0] == '"' and value[-1] == '"' and "\\" not in value:
        return value[1:-1]
    return json.loads(value)


class _Miss:
    def __repr__(self) -> str:
        return "MISS"


MISS: Any = _Miss()


def cached(
    table: str,
    paths: Sequence[str | Path],
    compute: Callable[[int], Any],
    keep: Callable[[Any], bool] = lambda v: True,
    usable: Callable[[Any], bool] = lambda v: True,
    folder: Path | None = None,
) -> tuple[list[Any], int]:
    """`compute(i)` for every path, from the cache where the file is unchanged: (values, how many computed).

        `compute` must return a JSON value; `keep(value)` says whether to store it (a transient failure
        should not be remembered); `usable(value)` whether a cached value serves this call (the duplicate
    check's `near` mode needs a hash an `exact` run did not store). The file's key is taken before `compute` reads it, so a file that
        changes while it is read is stored under its old key and read again next time.
    """
    # The readers' paths are absolute already (from an absolute root): normalising a million of them
    # again would cost a second at every start.
    names = [q if os.path.isabs(q) else os.path.abspath(q) for q in map(os.fspath, paths)]
    keys = file_keys(names)
    cache = FileCache(table, folder)
    try:
        values = cache.get(names, keys)
        todo = [i for i, v in enumerate(values) if v is MISS or not usable(v)]
        fresh: list[tuple[str, tuple[int, int], Any]] = []
        for i, v in zip(todo, compute_all(compute, todo), strict=True):
            values[i] = v
            if keys[i] is not None and keep(v):
                fresh.append((names[i], keys[i], v))
        cache.put(fresh)
        computed = len(todo)
    finally:
        cache.close()
    return values, computed


# -- computing the misses on every core ----------------------------------------------------------------
PARALLEL_FROM = 2000  # files: below this, starting the workers costs more than it saves
_CHUNK_FILES = 1000
_job: Callable[[int], Any] | None = None


def check_workers(n: int) -> int:
    """Processes that compute `n` misses: one per core this process may use (at most 8); one below
    PARALLEL_FROM files, inside a daemonic process (a DataLoader worker may not have children) or
    off Linux. `LITVISION_CHECK_WORKERS=<n>` sets it (1: in this process)."""
    import multiprocessing

    env = os.environ.get("LITVISION_CHECK_WORKERS", "").strip()
    if env.isdigit():
        wanted = max(1, int(env))
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        wanted = min(cores, 8) if n >= PARALLEL_FROM else 1
    # fork only on Linux: macOS lists it but its system libraries are not safe to fork after use.
    if wanted > 1 and (multiprocessing.current_process().daemon or not sys.platform.startswith("linux")):
        return 1
    return max(1, min(wanted, n))


def _worker_start() -> None:
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)  # the workers share the cores: no OpenMP pool per worker


def _run_chunk(indices: list[int]) -> list[Any]:
    assert _job is not None
    return [_job(i) for i in indices]


def compute_all(compute: Callable[[int], Any], todo: list[int]) -> list[Any]:
    """`[compute(i) for i in todo]`, spread over `check_workers` forked processes: a first run over a
    million files reads and decodes each once, and that is most of its set-up. The workers inherit
    `compute` and what it reads through fork (nothing is pickled but the JSON values coming back),
    and return their chunks in order, so the result is the serial one."""
    global _job
    workers = check_workers(len(todo))
    if workers <= 1:
        return [compute(i) for i in todo]
    import multiprocessing

    chunks = [todo[lo : lo + _CHUNK_FILES] for lo in range(0, len(todo), _CHUNK_FILES)]
    _job = compute
    try:
        with multiprocessing.get_context("fork").Pool(workers, initializer=_worker_start) as pool:
            return [v for part in pool.imap(_run_chunk, chunks) for v in part]
    finally:
        _job = None


# -- parsed indexes (a COCO file's arrays) --------------------------------------------------------------
def index_key(source: str | Path, **params: Any) -> str | None:
    """A name for the parsed index of `source` with `params`: changes with the file's size and mtime."""
    import hashlib

    key = file_key(source)
    if key is None or cache_dir() is None:
        return None
    text = json.dumps([os.path.abspath(source), key, params], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def load_index(kind: str, key: str | None) -> dict[str, Any] | None:
    """The arrays saved by `save_index` under `key`, or None (no cache, never saved, unreadable)."""
    import numpy as np

    folder = cache_dir()
    if key is None or folder is None:
        return None
    path = folder / kind / f"{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            return {name: z[name] for name in z.files}
    except (OSError, ValueError, KeyError) as e:
        if path.exists():
            log.info("Cached index %s unreadable, rebuilt: %s", path, e)
        return None


def save_index(kind: str, key: str | None, arrays: dict[str, Any]) -> None:
    """Save numpy arrays under `key`: written to a temporary file and renamed into place, so that a
    concurrent reader sees the whole file or none, and two writers leave one whole file."""
    import tempfile

    import numpy as np

    folder = cache_dir()
    if key is None or folder is None:
        return
    try:
        (folder / kind).mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder / kind, prefix=f".{key}.", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, folder / kind / f"{key}.npz")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as e:
        log.info("Index not cached (%s): %s", folder, e)
