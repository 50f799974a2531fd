"""Leakage and duplicate check at set-up: the same picture twice in a split, or in two splits.

    data.check_duplicates=exact   # default: identical decoded pixels (a content hash)
    data.check_duplicates=near    # also near-duplicates (resized / re-encoded copies): a 64-bit dHash
    data.check_duplicates=off

A test image that also sits in the training set inflates the test score; a training set that
holds one image many times is smaller than it looks. Exact duplicates are found from a hash of
the decoded pixels (and their shape), so a renamed or re-saved copy with the same pixels counts.

`near` adds a difference hash (dHash, Krawetz, "Kind of Like That", hackerfactor.com 2013, the
`dhash` of the imagehash package): grey image -> 9x8 area average -> one bit per horizontal
neighbour pair (is the left one brighter), 64 bits. Two images are near-duplicates when their
hashes differ in at most `NEAR_THRESHOLD` = 5 bits of 64 (imagehash's authors suggest <= 5 for
"the same image"; unrelated images differ in about 32). A 64x64 image and a 48x48 resize of it
differ in 0-2 bits here.

The result is a plain dict (`datamodule.data_checks["duplicates"]`) that goes into
`summary.json` under `data_checks`: per split the duplicated images, per pair of splits the images
of the later split that also appear in the earlier one (e.g. test images found in train), each with
up to `MAX_EXAMPLES` example pairs (file paths, or `split[i]` for in-memory data). A one-line
warning says what was found. The cost is measured by `python -m bench data_checks`.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from litvision.errors import UserError

if TYPE_CHECKING:  # torch is imported where it is used: `check_mode` serves config validation
    import torch

log = logging.getLogger(__name__)

MODES = ("exact", "near", "off")
NEAR_THRESHOLD = 5
# Smaller images are not hashed for `near` (the result says so).
NEAR_MIN_SIZE = 16
MAX_EXAMPLES = 5
SPLIT_ORDER = ("train", "val", "test")


def _big_enough(parts: list[_Split]) -> bool:
    """dHash looks at a 9x8 thumbnail: on images not much larger (8x8 digits) every image of one
    class is a "near-duplicate" of the others, which says nothing."""
    for s in parts:
        if s.size:
            shape = tuple(np.asarray(s.image(0)).shape[-2:])
            return min(shape) >= NEAR_MIN_SIZE
    return True


def check_mode(mode: Any) -> str:
    if mode is False or mode is None:
        return "off"
    if mode not in MODES:
        raise UserError(f"data.check_duplicates={mode!r} is not one of exact, near, off; pick one of those.")
    return str(mode)


def content_hash(image: torch.Tensor | np.ndarray) -> bytes:
    """A 128-bit hash of the decoded pixels and their shape (not of the file: re-saved copies match)."""
    arr = np.ascontiguousarray(image.numpy() if hasattr(image, "numpy") else image)
    h = hashlib.blake2b(digest_size=16)
    h.update(str((arr.shape, arr.dtype.str)).encode())
    h.update(memoryview(arr).cast("B"))
    return h.digest()


def dhash(image: torch.Tensor | np.ndarray) -> int:
    """64-bit difference hash of a (C, H, W) or (H, W) image; see the module docstring."""
    import torch

    x = torch.as_tensor(image)
    x = x[None] if x.ndim == 2 else x
    return int(dhash_batch(x[None])[0])


def dhash_batch(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """dHash of a batch (N, C, H, W) as uint64: grey -> 9x8 area average -> left brighter than right."""
    import torch

    x = torch.as_tensor(images).float().mean(1, keepdim=True)
    small = torch.nn.functional.adaptive_avg_pool2d(x, (8, 9))[:, 0]
    bits = (small[:, :, 1:] > small[:, :, :-1]).flatten(1).numpy().astype(np.uint64)  # (N, 64)
    return (bits << np.arange(64, dtype=np.uint64)).sum(1, dtype=np.uint64)


class _Split:
    """One split: where each image comes from, how to name it, and its hashes.

    `array`: the split's images as one uint8 array (N, C, H, W) when they are in memory (MNIST,
    CIFAR, digits); they are then keyed by their raw bytes (exact, no hashing) and dHashed in
    batches, which keeps the check at a few milliseconds per 10,000 images.
    """

    def __init__(
        self,
        name: str,
        image: Callable[[int], Any],
        size: int,
        describe: Callable[[int], str],
        array: np.ndarray | None = None,
        paths: Sequence[Any] | None = None,
    ):
        self.name, self.image, self.size, self.describe, self.array = name, image, size, describe, array
        # The file of each image, when they are files: their hashes then come from the file cache.
        self.paths = paths
        self.exact: list[Any] = []  # None: the image could not be decoded
        self.near: np.ndarray | None = None
        self.valid: np.ndarray | None = None


_ROW_BYTES_LIMIT = 1 << 16  # larger in-memory images are keyed by a digest rather than a copy


def _hash_arrays(splits: list[_Split], near: bool) -> None:
    for s in splits:
        a = np.ascontiguousarray(s.array)
        rows = a.reshape(len(a), int(np.prod(a.shape[1:])))  # not -1: an empty split has no size to infer
        shape = a.shape[1:]
        if rows.shape[1] <= _ROW_BYTES_LIMIT:
            s.exact = [(shape, r.tobytes()) for r in rows]
        else:
            s.exact = [(shape, content_hash(r)) for r in rows]
        if near:
            chunks = [dhash_batch(a[i : i + 1024]) for i in range(0, len(a), 1024)]
            s.near = np.concatenate(chunks) if chunks else np.zeros(0, np.uint64)
            s.valid = np.ones(len(a), dtype=bool)


def _hash_splits(splits: list[_Split], near: bool) -> int:
    """Hash every image; returns how many could not be decoded (left out of the check: an
    unreadable file is reported by `data.check_files` / `skip_corrupt`, or where it is read)."""
    if all(s.array is not None for s in splits):
        _hash_arrays(splits, near)
        return 0
    unreadable = 0
    for s in splits:
        if s.paths is not None:
            unreadable += _hash_files(s, near)
            continue
        hashes: list[bytes | None] = []
        dh: list[int] = []
        for i in range(s.size):
            try:
                img = s.image(i)
            except (UserError, OSError, RuntimeError, ValueError):
                unreadable += 1
                hashes.append(None)
                dh.append(0)
                continue
            hashes.append(content_hash(img))
            if near:
                dh.append(dhash(img))
        s.exact = hashes
        if near:
            s.near = np.asarray(dh, dtype=np.uint64)
            s.valid = np.asarray([h is not None for h in hashes], dtype=bool)
    return unreadable


def _hash_files(s: _Split, near: bool) -> int:
    """`_hash_splits` for a split of files, through the file cache (pipeline/filecache.py): an unchanged
    file is not read again. An unreadable file is not cached (it is named wherever it is read)."""
    from litvision.data.pipeline.filecache import cached

    def compute(i: int) -> str | None:
        try:
            img = s.image(i)
        except (UserError, OSError, RuntimeError, ValueError):
            return None
        # "<exact hex>" or, with near, "<exact hex> <dHash>": one short string per file reads back in a
        # fraction of a dict's time (a million of them at every start). dHash as a signed 64-bit integer.
        exact = content_hash(img).hex()
        return f"{exact} {int(np.int64(np.uint64(dhash(img))))}" if near else exact

    def usable(v: Any) -> bool:  # a dict is the format before the strings: computed again, once
        return isinstance(v, str) and (not near or " " in v)

    assert s.paths is not None
    values, _ = cached("hashes", s.paths, compute, keep=lambda v: v is not None, usable=usable)
    s.exact = [bytes.fromhex(v[:32]) if v is not None else None for v in values]
    if near:
        s.near = np.asarray([int(v[33:]) if v is not None else 0 for v in values], dtype=np.int64).view(
            np.uint64
        )
        s.valid = np.asarray([v is not None for v in values], dtype=bool)
    return sum(v is None for v in values)


def _exact_within(s: _Split) -> dict[str, Any]:
    first: dict[bytes, int] = {}
    count, examples = 0, []
    for i, h in enumerate(s.exact):
        if h is None:
            continue
        if h in first:
            count += 1
            if len(examples) < MAX_EXAMPLES:
                examples.append([s.describe(first[h]), s.describe(i)])
        else:
            first[h] = i
    return {"count": count, "examples": examples}


def _exact_across(a: _Split, b: _Split) -> dict[str, Any]:
    seen: dict[bytes, int] = {}
    for i, h in enumerate(a.exact):
        if h is not None:
            seen.setdefault(h, i)
    count, examples = 0, []
    for j, h in enumerate(b.exact):
        if h is not None and h in seen:
            count += 1
            if len(examples) < MAX_EXAMPLES:
                examples.append([a.describe(seen[h]), b.describe(j)])
    return {"count": count, "examples": examples}


def _near_matches(a: _Split, b: _Split, same: bool, threshold: int) -> dict[str, Any]:
    """Images of `b` within `threshold` bits of an image of `a` (an earlier one when a is b) and
    not pixel-identical to it; the distances are computed in blocks (n x m XOR + popcount)."""
    assert a.near is not None and b.near is not None
    assert a.valid is not None and b.valid is not None
    count, examples = 0, []
    block = 1024
    for start in range(0, b.size, block):
        bj = b.near[start : start + block]
        close = np.bitwise_count(bj[:, None] ^ a.near[None, :]) <= threshold  # (block, |a|)
        close &= a.valid[None, :] & b.valid[start : start + block, None]
        if same:  # each pair once: an image and an earlier one
            close &= np.arange(a.size)[None, :] < np.arange(start, start + len(bj))[:, None]
        rows, cols = np.nonzero(close)  # few: near-duplicates are rare
        matched: dict[int, int] = {}
        for r, i in zip(rows.tolist(), cols.tolist(), strict=True):
            j = start + r
            if j not in matched and a.exact[i] != b.exact[j]:
                matched[j] = i
        for j, i in sorted(matched.items()):
            count += 1
            if len(examples) < MAX_EXAMPLES:
                examples.append([a.describe(i), b.describe(j)])
    return {"count": count, "examples": examples}


def find_duplicates(
    splits: Mapping[str, tuple[Any, ...]],
    mode: str = "exact",
    threshold: int = NEAR_THRESHOLD,
) -> dict[str, Any] | None:
    """Duplicate counts for `{split: (image(i), size, describe(i)[, uint8 array])}`; None when off.

    `within[split]`: images equal to an earlier image of the same split.
    `across["train/test"]`: test images equal to some train image (and so on for every pair,
    earlier split first). With `near`, `near_within` and `near_across` count the images that are
    near-duplicates (dHash distance <= threshold) without being pixel-identical.
    """
    mode = check_mode(mode)
    if mode == "off":
        return None
    started = time.perf_counter()
    ordered = sorted(splits, key=lambda n: (SPLIT_ORDER.index(n) if n in SPLIT_ORDER else 99, n))
    parts = [_Split(n, *splits[n]) for n in ordered]
    near = mode == "near" and _big_enough(parts)
    known = _files_key(parts, mode, near, threshold)
    if known is not None:
        cached_result = _result_cache(known)
        if cached_result is not None:
            cached_result["seconds"] = round(time.perf_counter() - started, 3)
            return cached_result
    unreadable = _hash_splits(parts, near=near)
    pairs = [(a, b) for i, a in enumerate(parts) for b in parts[i + 1 :]]
    result: dict[str, Any] = {
        "mode": mode,
        "images": {s.name: s.size for s in parts},
        "unreadable": unreadable,
        "within": {s.name: _exact_within(s) for s in parts},
        "across": {f"{a.name}/{b.name}": _exact_across(a, b) for a, b in pairs},
    }
    if mode == "near" and not near:
        result["near_skipped"] = f"images smaller than {NEAR_MIN_SIZE} px: a 9x8 dHash cannot tell them apart"
    if near:
        result["near_threshold_bits"] = threshold
        result["near_within"] = {s.name: _near_matches(s, s, True, threshold) for s in parts}
        result["near_across"] = {
            f"{a.name}/{b.name}": _near_matches(a, b, False, threshold) for a, b in pairs
        }
    if known is not None and not unreadable:  # as per file: a failure is looked at again next time
        _result_cache(known, result)
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


def _files_key(parts: list[_Split], mode: str, near: bool, threshold: int) -> str | None:
    """A digest of what the check's result depends on when every split is files: the settings, each
    split's name and its files with their size and modification time (one stat each, shared with the
    file check). None for in-memory splits or a file that cannot be stat'ed."""
    from array import array

    from litvision.data.pipeline.filecache import cache_dir, file_keys

    if cache_dir() is None or any(s.paths is None for s in parts):
        return None
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{mode} {near} {threshold}".encode())
    for s in parts:
        assert s.paths is not None
        keys = file_keys(s.paths)
        if any(k is None for k in keys):
            return None
        h.update(f"\0{s.name}\0{len(s.paths)}\0".encode())
        h.update("\0".join(s.paths).encode("utf-8", "surrogateescape"))
        h.update(array("q", [v for k in keys for v in k]).tobytes())  # type: ignore[union-attr]
    return h.hexdigest()


def _result_cache(key: str, result: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The check's whole result for these files, kept beside the per-file hashes: a second run over a
    million unchanged files reads one row instead of a million (a changed file changes the key, and
    its hash alone is computed again). With `result`: store it."""
    from litvision.data.pipeline.filecache import FileCache

    cache = FileCache("results")
    try:
        if result is not None:
            cache.put([(f"duplicates:{key}", (0, 0), {k: v for k, v in result.items() if k != "seconds"})])
            return None
        (found,) = cache.get([f"duplicates:{key}"], [(0, 0)])
        return found if isinstance(found, dict) else None
    finally:
        cache.close()


def describe_findings(result: Mapping[str, Any] | None) -> str | None:
    """One line saying what was found, or None when nothing was."""
    if not result:
        return None
    found = []
    for section, what in (("within", "duplicated in"), ("near_within", "near-duplicated in")):
        for name, r in (result.get(section) or {}).items():
            if r["count"]:
                found.append(f"{r['count']} image(s) {what} {name}")
    for section, what in (("across", "also in"), ("near_across", "near-duplicates of images in")):
        for pair, r in (result.get(section) or {}).items():
            earlier, later = pair.split("/")
            if r["count"]:
                found.append(f"{r['count']} {later} image(s) {what} {earlier} (e.g. {r['examples'][0][1]})")
    if not found:
        return None
    return (
        "Duplicate images: "
        + "; ".join(found)
        + " (data_checks in summary.json; data.check_duplicates=off hides this)."
    )


def check_subsets(datasets: Mapping[str, Any], mode: str) -> dict[str, Any]:
    """`data_checks` of a DataModule whose splits are `ImageSubset`s (source + indices): hashes the
    untransformed uint8 images, names them by file path when they come from files."""
    from litvision.data.datasets.sources import FileImages, TensorImages

    splits: dict[str, tuple[Any, ...]] = {}
    for name, ds in datasets.items():
        source, indices = ds.source, ds.indices

        def image(i: int, source: Any = source, indices: Sequence[int] = indices) -> Any:
            return source.image(int(indices[i]))

        if isinstance(source, FileImages):

            def describe(i: int, source: Any = source, indices: Sequence[int] = indices) -> str:
                return str(source.paths[int(indices[i])])
        else:

            def describe(i: int, name: str = name) -> str:
                return f"{name}[{i}]"

        array = source.images.numpy()[np.asarray(indices)] if isinstance(source, TensorImages) else None
        paths = source.paths.texts(indices) if isinstance(source, FileImages) else None
        splits[name] = (image, len(ds), describe, array, paths)
    return report(find_duplicates(splits, mode))


def report(result: dict[str, Any] | None) -> dict[str, Any]:
    """Warn once (rank zero, on the terminal) and return what goes into summary.json's `data_checks`."""
    if result is None:
        return {}
    line = describe_findings(result)
    if line:
        from lightning.pytorch.utilities import rank_zero_only

        if rank_zero_only.rank == 0:
            # The terminal (one line; the root logger writes only to the run's log file) and the log.
            print(f"warning: {line}", file=sys.stderr)
            log.info(line)
    return {"duplicates": result}
