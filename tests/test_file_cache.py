"""The set-up checks' file cache (data/pipeline/filecache.py): a second set-up over an unchanged image
folder reads no image, a touched file alone is read again, and concurrent runs leave a whole cache."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT, compose_cfg

from bench.bench_setup_scale import open_spy


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("LITVISION_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from litvision.data.fixtures.classification import make_image_folder

    root = tmp_path_factory.mktemp("cache_folder")
    make_image_folder(root)
    return root / "image_folder"


def _setup(folder: Path, runs: Path) -> list[str]:
    """A fresh image_folder DataModule's set-up (file check + exact duplicate check): the image files it opened."""
    from litvision.build import build_datamodule

    dm = build_datamodule(compose_cfg(["data=image_folder", f"data.root={folder}"], runs))
    with open_spy() as opened:
        dm.setup("fit")
    assert dm.data_checks["duplicates"]["images"]["train"] > 0
    return opened


def test_second_setup_opens_no_image_and_a_touched_file_alone_is_read(
    folder: Path, cache_dir: Path, tmp_path: Path
) -> None:
    """Catches: a cache hit ignored (the lookup's `keys[i] == (size, mtime)` comparing the wrong
    thing, e.g. `(mtime, size)`: every file read again), and a key without the mtime (path and size
    only: the touched file is not read again, its stale result kept)."""
    images = sorted(p for p in folder.rglob("*") if p.is_file())
    first = _setup(folder, tmp_path / "runs")
    assert set(first) >= {str(p) for p in images}  # the first set-up reads every file
    assert _setup(folder, tmp_path / "runs") == []
    touched = images[3]
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    again = _setup(folder, tmp_path / "runs")
    assert set(again) == {str(touched)}


def test_cache_off_reads_every_file(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Catches: LITVISION_CACHE_DIR=off not honoured (a cache written to ~/.cache anyway), and an
    empty value read as a path (a cache in the working folder)."""
    from litvision.data.pipeline.filecache import cache_dir as where

    for off in ("off", ""):
        monkeypatch.setenv("LITVISION_CACHE_DIR", off)
        assert where() is None
        assert len(_setup(folder, tmp_path / "runs")) >= 24
        assert len(_setup(folder, tmp_path / "runs")) >= 24


_WRITER = textwrap.dedent(
    """
    import hashlib, sys, time
    from pathlib import Path
    from litvision.data.pipeline.filecache import cached
    files = sorted(str(p) for p in Path(sys.argv[1]).glob("*.bin"))[int(sys.argv[2]):int(sys.argv[3])]
    def compute(i):
        return hashlib.sha256(Path(files[i]).read_bytes()).hexdigest()
    values, computed = cached("hashes", files, compute)
    print(computed)
    """
)


def test_two_concurrent_runs_leave_a_whole_cache(cache_dir: Path, tmp_path: Path) -> None:
    """Two processes cache overlapping halves of a folder while a third holds the write lock for a
    second; afterwards every file is cached with its right value.
    Catches: no busy timeout (`timeout=0`: a run that meets the other's write drops its rows), and
    rows written outside one transaction with `INSERT` instead of `INSERT OR REPLACE` (the overlap's
    second writer fails)."""
    import hashlib

    from litvision.data.pipeline.filecache import FileCache, cached

    data = tmp_path / "data"
    data.mkdir()
    for i in range(200):
        (data / f"{i:03d}.bin").write_bytes(os.urandom(64))
    cache_dir.mkdir()
    FileCache("hashes").close()  # the database exists; the holder below locks it for writing
    holder = sqlite3.connect(cache_dir / "file_checks.sqlite", timeout=30)
    holder.execute("BEGIN IMMEDIATE")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(data), lo, hi], env=env, stdout=subprocess.PIPE, text=True
        )
        for lo, hi in (("0", "130"), ("70", "200"))
    ]
    import time

    time.sleep(1.5)  # both have computed and are waiting to write
    holder.rollback()
    holder.close()
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert [int(o.split()[-1]) for o in outs] == [130, 130]
    db = sqlite3.connect(cache_dir / "file_checks.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()
    files = sorted(str(p) for p in data.glob("*.bin"))
    values, computed = cached("hashes", files, lambda i: pytest.fail(f"{files[i]} was not cached"))
    assert computed == 0
    assert values == [hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in files]


def test_folder_scan_keeps_the_order_the_split_was_drawn_over(tmp_path: Path) -> None:
    """The scandir scan lists what `sorted(rglob("*"))` listed, in its order (the seeded split is
    drawn over it), hidden files and non-images left out, symlinked folders not followed.
    Catches: sorting the path strings (`a-b/` before `a/`: '-' < '/'), and following symlinked folders."""
    from litvision.data.datasets.image_folder import image_files
    from litvision.data.pipeline.decode import is_image_file

    root = tmp_path / "cls"
    for rel in (
        "a/b.png",
        "a-b/c.png",
        "a.png",
        "B.JPG",
        "z/y/x.jpeg",
        ".hidden.png",
        "notes.txt",
        "a/b/c.png",
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "o.png").write_bytes(b"x")
    (root / "link").symlink_to(outside, target_is_directory=True)
    want = [str(p) for p in sorted(p for p in root.rglob("*") if p.is_file() and is_image_file(p))]
    assert image_files(root) == want
    assert not any("outside" in p or "link" in p for p in want)


def _pid_and_square(i: int) -> tuple[int, int]:
    import time

    if i < 1005:  # the first chunk is the slowest: values gathered as they finish come out of order
        time.sleep(0.001)
    return os.getpid(), i * i


def test_misses_are_computed_on_every_core_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """A first run's checks (a read and a decode per file) are spread over forked workers, and their
    values come back in the order of the files. Catches: the workers never used (one process does
    it all), results gathered as they finish (imap_unordered: values paired with the wrong files),
    and a chunk dropped or repeated."""
    from litvision.data.pipeline.filecache import PARALLEL_FROM, check_workers, compute_all

    todo = list(range(5, 4505))
    monkeypatch.setenv("LITVISION_CHECK_WORKERS", "2")
    assert check_workers(len(todo)) == 2
    out = compute_all(_pid_and_square, todo)
    assert [v for _, v in out] == [i * i for i in todo]
    pids = {pid for pid, _ in out}
    assert len(pids) == 2 and os.getpid() not in pids
    monkeypatch.setenv("LITVISION_CHECK_WORKERS", "1")
    assert {pid for pid, _ in compute_all(_pid_and_square, todo[:50])} == {os.getpid()}
    monkeypatch.delenv("LITVISION_CHECK_WORKERS")
    assert check_workers(10) == 1  # a few files: not worth starting workers
    assert check_workers(PARALLEL_FROM) == min(len(os.sched_getaffinity(0)), 8)  # many: every core


def test_a_parallel_first_setup_finds_what_the_serial_one_finds(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file check and the duplicate check of a first set-up give the same splits, the same skipped
    file and the same duplicates in 2 worker processes as in one. Catches values written to the cache
    under the wrong file (a truncated file kept, or a duplicate lost) when computed in workers."""
    import shutil

    from litvision.build import build_datamodule

    root = tmp_path / "folder"
    shutil.copytree(folder, root)
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    some = sorted(p for p in classes[0].iterdir())
    for i, src in enumerate(some[:6]):  # the same pixels again, under another name in another class
        shutil.copy(src, classes[1] / f"copy_{i}{src.suffix}")
    data = some[7].read_bytes()
    some[7].write_bytes(data[: len(data) // 2])  # truncated: no end marker

    def first_setup(workers: str) -> tuple[dict, dict]:
        monkeypatch.setenv("LITVISION_CACHE_DIR", str(tmp_path / f"cache{workers}"))
        monkeypatch.setenv("LITVISION_CHECK_WORKERS", workers)
        dm = build_datamodule(
            compose_cfg(
                ["data=image_folder", f"data.root={root}", "data.skip_corrupt=true"], tmp_path / "runs"
            )
        )
        dm.setup("fit")
        splits = {k: [str(ds.source.paths[int(j)]) for j in ds.indices] for k, ds in dm.datasets.items()}
        found = {k: v for k, v in dm.data_checks["duplicates"].items() if k != "seconds"}
        return splits, found

    serial, parallel = first_setup("1"), first_setup("2")
    assert parallel == serial
    assert str(some[7]) not in {p for paths in serial[0].values() for p in paths}
    assert serial[1]["within"]["train"]["count"] >= 1, serial[1]


def test_one_setup_stats_each_file_once(
    folder: Path, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file check and the duplicate check of one set-up validate their cache entries with one stat
    per file (a million-file folder: a million stats at each start, not two), and the next set-up
    stats again (a file changed in between is seen). Catches the set-up's stat memo dropped, and a
    memo kept across set-ups (a touched file's old result served)."""
    from collections import Counter

    _setup(folder, tmp_path / "runs")  # fills the cache
    images = {str(p) for p in folder.rglob("*") if p.is_file()}
    counts: Counter[str] = Counter()
    real_stat = os.stat

    def counting(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if isinstance(path, str) and path in images:
            counts[path] += 1
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counting)
    assert _setup(folder, tmp_path / "runs") == []
    assert set(counts) == images and set(counts.values()) == {1}, counts.most_common(3)
    counts.clear()
    _setup(folder, tmp_path / "runs")
    assert set(counts.values()) == {1}


@pytest.mark.parametrize(
    "value",
    [
        None,
        "0f" * 16,
        f"{'ab' * 16} -4611686018427387904",
        'say "hi"',
        "ü",
        "a\\b",
        "",
        {"a": 1},
        [1, "x"],
        3,
    ],
)
def test_cached_values_read_back_as_written(value: object) -> None:
    """A cached value reads back as json.dumps wrote it; the shortcuts for null and plain strings (a
    million rows at every start) change nothing. Catches a string with an escaped quote, a backslash
    or a non-ASCII character cut at the wrong place, and the empty string."""
    import json

    from litvision.data.pipeline.filecache import _loads

    assert _loads(json.dumps(value)) == value


def _workers_in_a_daemon(queue: object) -> None:
    from litvision.data.pipeline.filecache import check_workers

    queue.put(check_workers(10_000))  # type: ignore[attr-defined]


def test_no_workers_inside_a_daemonic_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """A set-up inside a daemonic process (a DataLoader worker, a Pool's worker) computes in that
    process: Python refuses a daemon's children. Catches the daemon check dropped."""
    import multiprocessing

    monkeypatch.delenv("LITVISION_CHECK_WORKERS", raising=False)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_workers_in_a_daemon, args=(queue,), daemon=True)
    proc.start()
    got = queue.get(timeout=60)
    proc.join(60)
    assert got == 1


def test_an_unchanged_folder_reuses_the_duplicate_checks_whole_result(
    folder: Path, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second set-up over unchanged files takes the duplicate check's result whole (no per-file
    hash row read: at a million files that lookup is most of the check); a file overwritten with
    another's pixels changes the result at once. Catches the result cache ignoring the files' mtimes
    or sizes (a stale result: the new duplicate missed) and the result cache never used."""
    import shutil

    from litvision.build import build_datamodule
    from litvision.data.pipeline.filecache import FileCache

    root = tmp_path / "folder"
    shutil.copytree(folder, root)
    reads: list[str] = []
    real_get = FileCache.get

    def spy(self: FileCache, paths: list, keys: list) -> list:
        reads.append(self.table)
        return real_get(self, paths, keys)

    monkeypatch.setattr(FileCache, "get", spy)

    def checks() -> dict:
        reads.clear()
        dm = build_datamodule(compose_cfg(["data=image_folder", f"data.root={root}"], tmp_path / "runs"))
        dm.setup("fit")
        return {k: v for k, v in dm.data_checks["duplicates"].items() if k != "seconds"}

    first = checks()
    assert "hashes" in reads and "results" in reads
    assert checks() == first and "hashes" not in reads
    cat = sorted((root / "cat").iterdir())
    shutil.copy(cat[0], cat[1])  # a new pair of identical images
    third = checks()
    assert "hashes" in reads
    found = sum(r["count"] for r in third["within"].values()) + sum(
        r["count"] for r in third["across"].values()
    )
    before = sum(r["count"] for r in first["within"].values()) + sum(
        r["count"] for r in first["across"].values()
    )
    assert found == before + 1, (first, third)
