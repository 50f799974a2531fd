"""The duplicate check (data/pipeline/duplicates.py) called directly, in milliseconds: the three ways splits
reach it (in-memory arrays, images read one by one, files through the file cache), what is counted and
named, unreadable images, splits of any size, and the one-line warning. The DataModule-level checks
(planted files, CIFAR batches, digits) are in tests/test_data_checks.py."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from litvision.data.pipeline import duplicates as dup
from litvision.data.pipeline.duplicates import (
    MAX_EXAMPLES,
    check_mode,
    content_hash,
    describe_findings,
    dhash,
    find_duplicates,
    report,
)
from litvision.errors import UserError

RNG = np.random.default_rng(11)


def _smooth(n: int, size: int = 16) -> np.ndarray:
    """n unrelated (1, size, size) uint8 images (noise in 0-200, so a brightened copy is not clipped): their
    dHashes differ in about 32 of 64 bits."""
    return RNG.integers(0, 200, (n, 1, size, size), dtype=np.uint8)


def _in_memory(name: str, a: np.ndarray) -> tuple:
    return (lambda i: a[i], len(a), lambda i: f"{name}[{i}]", a)


def _one_by_one(name: str, images: list, reads: list | None = None) -> tuple:
    """A split read image by image (no array): `None` entries cannot be decoded (OSError)."""

    def image(i: int):
        if reads is not None:
            reads.append(i)
        if images[i] is None:
            raise OSError(f"cannot decode {name} {i}")
        return images[i]

    return (image, len(images), lambda i: f"{name}[{i}]")


def test_mode_values() -> None:
    """false/null mean off; anything but exact, near or off (true included) is refused in one line; the
    default is exact. Catches: true taken for off, off spelled differently (the check then runs), another
    default."""
    assert check_mode(False) == check_mode(None) == check_mode("off") == "off"
    for bad in (True, "EXACT", "on"):
        with pytest.raises(UserError, match="data.check_duplicates=") as e:
            check_mode(bad)
        assert "\n" not in str(e.value)
    a = _smooth(2)
    assert find_duplicates({"train": _in_memory("train", a)}, mode=None) is None
    assert find_duplicates({"train": _in_memory("train", a)})["mode"] == "exact"


def test_hashes_see_pixels_and_shape() -> None:
    """The same pixels as a tensor or an array hash alike; the same bytes in another shape do not; a
    (H, W) image has the dHash of its (1, H, W) form; a flat image's dHash is 0 (no neighbour brighter).
    Catches: shape left out of the hash, 2-D images hashed as a batch, `>=` for `>` in dHash."""
    img = _smooth(1)[0]
    assert content_hash(torch.from_numpy(img)) == content_hash(img)
    assert content_hash(img.reshape(1, 8, 32)) != content_hash(img)
    assert dhash(img[0]) == dhash(img)
    assert dhash(np.full((1, 16, 16), 90, np.uint8)) == 0
    # Same bytes, another shape, as two in-memory splits: not duplicates.
    a = _smooth(3)
    found = find_duplicates(
        {"train": _in_memory("train", a), "test": _in_memory("test", a.reshape(3, 4, 8, 8))}
    )
    assert found["across"]["train/test"]["count"] == 0


@pytest.mark.parametrize("form", ["arrays", "one_by_one"])
def test_counts_examples_and_the_warning(form: str) -> None:
    """Within a split: each image equal to an earlier one counts once (3 copies = 2), examples pair it with
    the first copy, at most MAX_EXAMPLES of them; across splits: the later split's images found in the
    earlier one. The one-line warning names all of it. Both input forms give the same result.
    Catches: counting from 1 or by 2, a 6th example, examples naming the wrong images, a section or
    count missing from the line."""
    base = _smooth(12)
    train = np.concatenate([base[:6], base[[0, 0, 1, 2, 3, 4, 5]]])  # image 0 three times, 1-5 twice
    test = np.concatenate([base[6:], base[[1]]])  # one training image in test
    make = _in_memory if form == "arrays" else lambda n, a: _one_by_one(n, list(a))
    found = find_duplicates({"test": make("test", test), "train": make("train", train)})
    assert found["images"] == {"train": 13, "test": 7} and found["unreadable"] == 0
    assert found["within"]["train"] == {
        "count": 7,
        "examples": [["train[0]", "train[6]"], ["train[0]", "train[7]"]]
        + [[f"train[{i}]", f"train[{i + 7}]"] for i in (1, 2, 3)],
    }
    assert len(found["within"]["train"]["examples"]) == MAX_EXAMPLES
    assert found["within"]["test"] == {"count": 0, "examples": []}
    assert found["across"] == {"train/test": {"count": 1, "examples": [["train[1]", "test[6]"]]}}
    assert describe_findings(found) == (
        "Duplicate images: 7 image(s) duplicated in train; 1 test image(s) also in train (e.g. test[6]) "
        "(data_checks in summary.json; data.check_duplicates=off hides this)."
    )
    assert isinstance(found["seconds"], float) and 0 <= found["seconds"] < 60
    assert found["seconds"] == round(found["seconds"], 3)
    assert "near_skipped" not in found and "near_within" not in found


def test_many_leaks_are_all_counted_with_five_examples() -> None:
    """Catches: the across count starting at 1, a 6th example kept."""
    base = _smooth(8)
    found = find_duplicates({"train": _in_memory("train", base), "val": _in_memory("val", base[:7])})
    assert found["across"]["train/val"]["count"] == 7
    assert found["across"]["train/val"]["examples"] == [[f"train[{i}]", f"val[{i}]"] for i in range(5)]


def test_unreadable_images_are_counted_and_left_out() -> None:
    """Images read one by one that cannot be decoded are counted as unreadable and match nothing, not even
    each other or a flat image (whose dHash, 0, is what an unreadable one is given).
    Catches: unreadable images counted as duplicates of each other or near-duplicates of a flat image, the
    count wrong, a read error stopping the check."""
    flat = np.full((1, 16, 16), 50, np.uint8)
    imgs = _smooth(3)
    train = [imgs[0], None, flat, None, imgs[1], imgs[1]]
    test = [None, imgs[2], imgs[0], imgs[2] + 1]
    for mode in ("exact", "near"):
        found = find_duplicates(
            {"train": _one_by_one("train", train), "test": _one_by_one("test", test)}, mode
        )
        assert found["unreadable"] == 3
        assert found["within"]["train"] == {"count": 1, "examples": [["train[4]", "train[5]"]]}
        assert found["across"]["train/test"] == {"count": 1, "examples": [["train[0]", "test[2]"]]}
        if mode == "near":
            assert found["near_within"]["train"]["count"] == 0
            assert found["near_across"]["train/test"]["count"] == 0
            assert found["near_within"]["test"] == {"count": 1, "examples": [["test[1]", "test[3]"]]}
            assert describe_findings(found) == (
                "Duplicate images: 1 image(s) duplicated in train; 1 image(s) near-duplicated in test; "
                "1 test image(s) also in train (e.g. test[2]) "
                "(data_checks in summary.json; data.check_duplicates=off hides this)."
            )


def test_near_pairs_are_counted_once_and_exact_copies_are_not_near() -> None:
    """A near-duplicate pair within a split counts once; a pixel-identical copy is an exact duplicate, not
    a near one; near results stop at MAX_EXAMPLES examples. Catches: each within-split pair counted both
    ways, more than 5 examples."""
    base = _smooth(7, size=32)
    brighter = np.clip(base.astype(int) + 3, 0, 255).astype(np.uint8)  # same dHash, other pixels
    train = np.concatenate([base, brighter, base[:1]])
    found = find_duplicates({"train": _in_memory("train", train)}, mode="near")
    assert found["within"]["train"]["count"] == 1
    near = found["near_within"]["train"]
    assert near["count"] == 7 + 1  # each brightened copy, and the exact copy of 0 is near its brightened twin
    assert near["examples"][:2] == [["train[0]", "train[7]"], ["train[1]", "train[8]"]]
    assert len(near["examples"]) == MAX_EXAMPLES
    assert "near-duplicated in train" in describe_findings(found)


def test_splits_beyond_one_block_and_empty_ones() -> None:
    """More than 1024 images (the batch and block size) and an empty split: every image hashed once, a
    near pair in the second block found, an empty split reported with 0 images. Catches: blocks that
    overlap or skip an image, a wrong block offset, an empty split crashing the near check."""
    n = 1100
    a = _smooth(n)  # distinct noise images...
    a[1050] = a[5] + 1  # ...and a brightened copy (the same dHash), one in each block
    empty = np.zeros((0, 1, 16, 16), np.uint8)
    found = find_duplicates({"train": _in_memory("train", a), "val": _in_memory("val", empty)}, mode="near")
    assert found["images"] == {"train": n, "val": 0}
    assert found["within"]["train"]["count"] == 0
    assert found["near_within"]["train"] == {"count": 1, "examples": [["train[5]", "train[1050]"]]}
    assert found["near_across"]["train/val"]["count"] == 0
    # An empty first split, in near mode: compared with the next one without error.
    first = find_duplicates(
        {"train": _in_memory("train", empty), "test": _in_memory("test", a[:3])}, mode="near"
    )
    assert first["near_across"]["train/test"] == {"count": 0, "examples": []}
    # Only empty splits: nothing to size the images by, the near check runs (on nothing).
    none = find_duplicates({"train": _in_memory("train", empty)}, mode="near")
    assert "near_skipped" not in none and none["near_within"]["train"]["count"] == 0
    # The dHashes of all 1100, in order.
    got = find_duplicates(
        {"test": _in_memory("test", a[1020:1030]), "train": _in_memory("train", a)}, mode="near"
    )
    assert got["across"]["train/test"]["examples"] == [[f"train[{1020 + i}]", f"test[{i}]"] for i in range(5)]


def test_large_in_memory_images_are_keyed_by_a_digest() -> None:
    """Images over 64 KiB (keyed by a hash instead of their bytes) are compared the same way.
    Catches: the large-image path giving no keys, or the same key to every image."""
    big = RNG.integers(0, 256, (3, 3, 160, 160), dtype=np.uint8)
    found = find_duplicates({"train": _in_memory("train", big), "test": _in_memory("test", big[[2, 2]])})
    assert found["across"]["train/test"] == {
        "count": 2,
        "examples": [["train[2]", "test[0]"], ["train[2]", "test[1]"]],
    }
    assert found["within"]["train"]["count"] == 0


def test_other_split_names_come_after_train_val_test() -> None:
    """Catches: a split name outside train/val/test failing or sorting first."""
    a = _smooth(2)
    found = find_duplicates(
        {
            "holdout": _in_memory("holdout", a[:1]),
            "test": _in_memory("test", a),
            "extra": _in_memory("extra", a[1:]),
        }
    )
    assert list(found["images"]) == ["test", "extra", "holdout"]
    assert set(found["across"]) == {"test/extra", "test/holdout", "extra/holdout"}
    assert found["across"]["test/holdout"]["count"] == 1


def _files(tmp: Path, images: np.ndarray, broken: int = 0) -> list[str]:
    from PIL import Image

    tmp.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(images):
        p = tmp / f"{i}.png"
        Image.fromarray(img[0]).save(p)
        paths.append(str(p))
    for j in range(broken):
        p = tmp / f"broken{j}.png"
        p.write_bytes(b"not a png")
        paths.append(str(p))
    return paths


def _file_split(name: str, paths: list[str], reads: list) -> tuple:
    from PIL import Image

    def image(i: int):
        reads.append(i)
        with Image.open(paths[i]) as im:
            return np.asarray(im)[None]

    return (image, len(paths), lambda i: paths[i], None, paths)


def test_files_go_through_the_cache_and_near_recomputes_what_exact_did_not_store(tmp_path: Path) -> None:
    """A split of files: unchanged files are not read again on the next check; a `near` check after an
    `exact` one reads them again (the exact run stored no dHash) and then finds the near pair; an
    unreadable file is counted, matches nothing and is read again each time (not cached).
    Catches: no caching, caching only failures, an exact-run entry used for near (no dHash), unreadable
    files cached or counted wrongly."""
    imgs = _smooth(3, size=32)
    twin = np.clip(imgs[:1].astype(int) + 2, 0, 255).astype(np.uint8)
    train = _files(tmp_path / "train", imgs, broken=1)
    test = _files(tmp_path / "test", np.concatenate([imgs[1:2], twin]), broken=1)
    reads: list = []

    def check(mode: str) -> dict:
        reads.clear()
        return find_duplicates(
            {"train": _file_split("train", train, reads), "test": _file_split("test", test, reads)}, mode
        )

    first = check("exact")
    assert len(reads) == 7 and first["unreadable"] == 2
    assert first["across"]["train/test"] == {"count": 1, "examples": [[train[1], test[0]]]}
    again = check("exact")
    assert len(reads) == 2 and again["across"] == first["across"]  # only the two broken files
    near = check("near")
    assert len(reads) == 8 and near["unreadable"] == 2  # 7 files, and the first image again for its size
    assert near["near_across"]["train/test"] == {"count": 1, "examples": [[train[0], test[1]]]}
    assert check("near")["near_across"] == near["near_across"] and len(reads) == 3


def test_report_warns_once_on_the_terminal_and_in_the_log(capfd, caplog) -> None:
    """Catches: the log file getting something other than the warning line; a warning for clean data."""
    a = _smooth(3)
    with caplog.at_level(logging.INFO, logger=dup.log.name):
        out = report(find_duplicates({"train": _in_memory("train", a[[0, 1, 0]])}))
    line = describe_findings(out["duplicates"])
    assert line.startswith("Duplicate images: 1 image(s) duplicated in train")
    assert capfd.readouterr().err.strip() == f"warning: {line}"
    assert [r.getMessage() for r in caplog.records if r.name == dup.log.name] == [line]
    assert report(find_duplicates({"train": _in_memory("train", a)})) != {} and not capfd.readouterr().err
    assert report(None) == {}


def test_near_skipped_when_either_side_is_small_and_near_leaks_are_named() -> None:
    """12 x 32 images are too small for dHash (its 9 x 8 thumbnail); a near-duplicate across splits is named
    in the warning. Catches: the size read from one dimension only, the near-across section left out of
    the line."""
    wide = RNG.integers(0, 200, (2, 1, 12, 32), dtype=np.uint8)
    skipped = find_duplicates({"train": _in_memory("train", wide)}, mode="near")
    assert "16 px" in skipped["near_skipped"] and "near_within" not in skipped
    a = _smooth(2)
    found = find_duplicates(
        {"train": _in_memory("train", a), "test": _in_memory("test", a[1:] + 1)}, mode="near"
    )
    assert describe_findings(found) == (
        "Duplicate images: 1 test image(s) near-duplicates of images in train (e.g. test[0]) "
        "(data_checks in summary.json; data.check_duplicates=off hides this)."
    )
