"""k-fold cross-validation splits (`data.num_folds`, `data.fold`) and the duplicate/leakage check
(`data.check_duplicates`) on real DataModules reading real files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_cfg

from litvision.data.pipeline.splits import stratified_folds, train_val_split
from litvision.errors import UserError


def datamodule(overrides: list[str], runs_dir: Path):
    from litvision.build import build_datamodule

    dm = build_datamodule(compose_cfg(overrides, runs_dir))
    dm.prepare_data()
    dm.setup("fit")
    return dm


def smooth_image(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A photo-like image (a random 4x4 colour field, smoothly upsampled): distinct images differ in
    about half of their dHash bits, unlike noise, whose dHash is fragile."""
    from PIL import Image

    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC))


def write_png(path: Path, array: np.ndarray) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


# -- k-fold -------------------------------------------------------------------------------------
def test_stratified_folds_are_disjoint_cover_and_keep_class_shares() -> None:
    """Catches folds that overlap or leave samples out, unbalanced classes per fold (e.g. dealing
    each class from fold 0), and folds that ignore the seed."""
    labels = np.repeat(np.arange(4), [23, 17, 9, 31])
    vals = [train_val_split(labels, 0.1, seed=7, num_folds=5, fold=i) for i in range(5)]
    all_val = np.concatenate([v for _, v in vals])
    assert sorted(all_val.tolist()) == list(range(len(labels)))  # disjoint and covering
    for train, val in vals:
        assert not set(train) & set(val) and len(train) + len(val) == len(labels)
        for cls, n in zip(*np.unique(labels, return_counts=True), strict=True):
            assert abs(np.sum(labels[val] == cls) - n / 5) < 1  # stratified per fold
    sizes = [len(v) for _, v in vals]
    assert max(sizes) - min(sizes) <= 1
    assert not np.array_equal(stratified_folds(labels, 5, 7), stratified_folds(labels, 5, 8))
    assert np.array_equal(stratified_folds(labels, 5, 7), stratified_folds(labels, 5, 7))


def test_kfold_on_an_image_folder_datamodule(tmp_path: Path, runs_dir: Path) -> None:
    """Folds without and with a test split carved out of the folder (data.test_fraction).
    Catches a DataModule that ignores data.num_folds/data.fold (val stays the val_fraction split),
    k-fold ignored when data.test_fraction is set, and fold indices taken as indices of the whole
    folder instead of the images left after the test split (test images in train or val)."""
    rng = np.random.default_rng(0)
    counts = {"a": 12, "b": 8, "c": 10}
    for cls, n in counts.items():
        for i in range(n):
            write_png(tmp_path / "imgs" / cls / f"{i}.png", smooth_image(rng, 16))
    base = ["data=image_folder", f"data.root={tmp_path / 'imgs'}", "data.num_workers=0", "data.image_size=16"]
    folds = []
    for fold in range(5):
        dm = datamodule([*base, "data.num_folds=5", f"data.fold={fold}"], runs_dir)
        train, val = dm.datasets["train"], dm.datasets["val"]
        assert train.source is val.source and not set(train.indices) & set(val.indices)
        assert len(train) + len(val) == 30
        per_class = np.bincount(val.labels, minlength=3)
        assert all(abs(per_class[k] - n / 5) < 1 for k, n in enumerate(counts.values()))
        folds.append(set(val.indices.tolist()))
    assert set().union(*folds) == set(range(30)) and sum(map(len, folds)) == 30

    folds, tests = [], []
    for fold in range(5):
        dm = datamodule([*base, "data.test_fraction=0.2", "data.num_folds=5", f"data.fold={fold}"], runs_dir)
        train, val, test = (set(dm.datasets[k].indices.tolist()) for k in ("train", "val", "test"))
        assert not train & val and not (train | val) & test and len(train | val | test) == 30
        folds.append(val)
        tests.append(test)
    assert all(t == tests[0] for t in tests) and 4 <= len(tests[0]) <= 8, "one test split for every fold"
    rest = set(range(30)) - tests[0]
    assert set().union(*folds) == rest and sum(map(len, folds)) == len(rest), "the folds partition the rest"
    assert max(map(len, folds)) - min(map(len, folds)) <= 2


def test_kfold_on_digits_keeps_the_test_split_out(runs_dir: Path) -> None:
    """Catches k-fold folds that take test images, or a test split that moves with the fold."""
    vals, tests = [], []
    for fold in range(5):
        dm = datamodule(["experiment=digits_cnn", "data.num_folds=5", f"data.fold={fold}"], runs_dir)
        val, test = dm.datasets["val"], dm.datasets["test"]
        x_val = val.source.images[val.indices]
        vals.append({tuple(r.tolist()) for r in x_val.flatten(1)})
        tests.append(test.source.images[test.indices])
        assert len(dm.datasets["train"]) + len(dm.datasets["val"]) + len(dm.datasets["test"]) == 1797
    assert all(t.equal(tests[0]) for t in tests)
    assert sum(len(v) for v in vals) == 1797 - len(tests[0])


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["data.num_folds=5", "data.fold=5"], "data.fold=5 is out of range for data.num_folds=5"),
        (["data.num_folds=5"], "data.num_folds=5 needs data.fold"),
        (["data.fold=1"], "data.fold=1 needs data.num_folds"),
        (["data.num_folds=1", "data.fold=0"], "data.num_folds=1 must be an integer >= 2"),
        (["data.check_duplicates=fuzzy"], "data.check_duplicates='fuzzy' is not one of exact, near, off"),
    ],
)
@pytest.mark.parametrize("data", ["digits", "image_folder"])
def test_bad_fold_and_check_settings_are_one_line(
    data: str, overrides: list[str], words: str, tmp_path: Path, runs_dir: Path
) -> None:
    """Catches an out-of-range fold that trains on an empty or wrong split instead of refusing."""
    from litvision.build import build_datamodule

    write_png(tmp_path / "a" / "0.png", np.zeros((8, 8, 3), np.uint8))
    root = [f"data.root={tmp_path}"] if data == "image_folder" else []
    with pytest.raises(UserError) as err:
        build_datamodule(compose_cfg([f"data={data}", *root, *overrides], runs_dir))
    assert words in str(err.value) and "\n" not in str(err.value)


# -- duplicates ---------------------------------------------------------------------------------
@pytest.fixture
def planted(tmp_path: Path) -> dict[str, Path]:
    """An image folder (2 classes x 8) and a test folder (2 x 3) with three planted problems:
    a train image copied under a new name in its own class folder, a train image also in the test
    folder (same pixels, new name), and a 48x48 resize of another train image in the test folder."""
    from PIL import Image

    rng = np.random.default_rng(3)
    paths: dict[str, Path] = {}
    for cls in ("cat", "dog"):
        for i in range(8):
            write_png(tmp_path / "train" / cls / f"{i}.png", smooth_image(rng))
        for i in range(3):
            write_png(tmp_path / "test" / cls / f"t{i}.png", smooth_image(rng))
    paths["twin_a"] = tmp_path / "train" / "cat" / "2.png"
    paths["twin_b"] = shutil.copy(paths["twin_a"], tmp_path / "train" / "cat" / "2_copy.png")
    paths["leaked"] = tmp_path / "train" / "dog" / "5.png"
    # Same decoded pixels, different file bytes (re-encoded with another compression level).
    paths["leaked_copy"] = tmp_path / "test" / "dog" / "leak.png"
    Image.open(paths["leaked"]).save(paths["leaked_copy"], compress_level=1)
    paths["resized_src"] = tmp_path / "train" / "cat" / "6.png"
    paths["resized"] = tmp_path / "test" / "cat" / "small.png"
    Image.open(paths["resized_src"]).resize((48, 48), Image.BILINEAR).save(paths["resized"])
    paths["root"] = tmp_path
    return paths


def _where(dm, path: Path) -> str:
    for name, ds in dm.datasets.items():
        if str(path) in {str(ds.source.paths[i]) for i in ds.indices}:
            return name
    raise AssertionError(path)


def _pair_key(a: str, b: str) -> str:
    order = ("train", "val", "test")
    return "/".join(sorted((a, b), key=order.index))


@pytest.mark.parametrize("mode", ["exact", "near"])
def test_planted_duplicates_are_counted_with_their_paths(
    mode: str, planted: dict[str, Path], runs_dir: Path, capfd
) -> None:
    """Catches hashing the file bytes instead of the pixels (the re-encoded leak is missed), counting
    each pair twice, a near check that misses a resized copy or flags unrelated images, and a
    missing terminal warning."""
    root = planted["root"]
    dm = datamodule(
        [
            "data=image_folder",
            f"data.root={root / 'train'}",
            f"data.test_dir={root / 'test'}",
            "data.num_workers=0",
            "data.image_size=64",
            "data.val_fraction=0.25",
            f"data.check_duplicates={mode}",
        ],
        runs_dir,
    )
    found = dm.data_checks["duplicates"]
    assert found["mode"] == mode and found["images"] == {"train": 13, "val": 4, "test": 8}

    def nonzero(section: str) -> dict[str, dict]:
        both = {**found[section.replace("X", "within")], **found[section.replace("X", "across")]}
        return {k: v for k, v in both.items() if v["count"]}

    twin_a, twin_b = _where(dm, planted["twin_a"]), _where(dm, planted["twin_b"])
    twin_key = twin_a if twin_a == twin_b else _pair_key(twin_a, twin_b)
    leak_key = _pair_key(_where(dm, planted["leaked"]), "test")
    assert set(nonzero("X")) == {twin_key, leak_key}
    first, second = planted["twin_a"], planted["twin_b"]
    if twin_a != twin_b and twin_key.split("/")[0] != twin_a:
        first, second = second, first
    assert found["within" if twin_a == twin_b else "across"][twin_key] == {
        "count": 1,
        "examples": [[str(first), str(second)]],
    }
    assert found["across"][leak_key] == {
        "count": 1,
        "examples": [[str(planted["leaked"]), str(planted["leaked_copy"])]],
    }
    if mode == "near":
        near_key = _pair_key(_where(dm, planted["resized_src"]), "test")
        assert found["near_threshold_bits"] == 5
        assert nonzero("near_X") == {
            near_key: {"count": 1, "examples": [[str(planted["resized_src"]), str(planted["resized"])]]}
        }
    else:
        assert "near_across" not in found
    err = capfd.readouterr().err
    [line] = [ln for ln in err.splitlines() if "Duplicate images" in ln]
    assert "test image(s) also in" in line and str(planted["leaked_copy"]) in line


def test_duplicate_check_off_and_clean_data(planted: dict[str, Path], runs_dir: Path, capfd) -> None:
    """Catches `off` still hashing (or reporting), and warnings on data without duplicates."""
    root = planted["root"]
    base = ["data=image_folder", "data.num_workers=0", "data.image_size=64"]
    dm = datamodule([*base, f"data.root={root / 'train'}", "data.check_duplicates=off"], runs_dir)
    assert dm.data_checks == {}
    for p in (planted["twin_b"], planted["leaked_copy"], planted["resized"]):
        p.unlink()
    capfd.readouterr()
    dm = datamodule([*base, f"data.root={root / 'train'}", f"data.test_dir={root / 'test'}"], runs_dir)
    found = dm.data_checks["duplicates"]
    assert all(v["count"] == 0 for part in ("within", "across") for v in found[part].values())
    assert "Duplicate images" not in capfd.readouterr().err


def test_digits_exact_check_and_near_skipped_on_tiny_images(runs_dir: Path) -> None:
    """Catches a digits DataModule without data_checks, and a near check that calls every 8x8 digit a
    near-duplicate of the others (dHash is meaningless below 16 px)."""
    dm = datamodule(["experiment=digits_cnn"], runs_dir)
    found = dm.data_checks["duplicates"]
    assert found["images"] == {"train": 1169, "val": 269, "test": 359}
    assert found["across"]["train/test"]["count"] == 0
    dm = datamodule(["experiment=digits_cnn", "data.check_duplicates=near"], runs_dir)
    assert "near_across" not in dm.data_checks["duplicates"]
    assert "16 px" in dm.data_checks["duplicates"]["near_skipped"]


def test_planted_duplicate_in_cifar_batches(tmp_path: Path, runs_dir: Path) -> None:
    """Catches the in-memory path (MNIST, CIFAR: images keyed by their bytes) missing a test image
    that is also a training image, or naming the wrong positions."""
    from litvision.data.fixtures import classification as fx

    rng = np.random.default_rng(5)
    batches = []
    for _ in range(5):
        y = fx.balanced_labels(10, 2)
        batches.append((rng.integers(0, 256, (len(y), 32, 32, 3), dtype=np.uint8), y))
    xte = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    xte[2] = batches[1][0][7]  # training image 27 of the 100, as test image 2
    fx.write_cifar10(tmp_path, batches, (xte, np.arange(5)), fx.CIFAR10_CLASSES)
    dm = datamodule(["data=cifar10", f"data.root={tmp_path}", "data.num_workers=0"], runs_dir)
    found = dm.data_checks["duplicates"]
    split = "train" if 27 in dm.datasets["train"].indices else "val"
    position = int(np.flatnonzero(dm.datasets[split].indices == 27)[0])
    assert found["across"][f"{split}/test"] == {"count": 1, "examples": [[f"{split}[{position}]", "test[2]"]]}
    assert sum(r["count"] for part in ("within", "across") for r in found[part].values()) == 1


def _dhash_image(bits: np.ndarray) -> np.ndarray:
    """A (1, 64, 72) uint8 image whose dHash is `bits` (8 rows x 8): 8x8-pixel blocks on a 8x9 grid,
    each block brighter than its left neighbour where the bit is 1 (the pooling reads whole blocks)."""
    steps = np.where(bits, 10, -10)
    grid = np.concatenate([np.full((8, 1), 100), 100 + np.cumsum(steps, axis=1)], axis=1)
    return np.kron(grid, np.ones((8, 8))).astype(np.uint8)[None]


def test_near_duplicates_at_the_threshold_count_and_one_bit_more_does_not() -> None:
    """Three test images 4, 5 and 6 bits of dHash away from the one training image: the
    threshold is 5 bits inclusive (`<= 5`, imagehash's rule), so 4 and 5 count and 6 does not.
    Catches: `<` for `<=` at the threshold (the 5-bit copy missed), and a threshold of 6 (or
    `<= threshold + 1`: the 6-bit image flagged)."""
    from litvision.data.pipeline.duplicates import NEAR_THRESHOLD, dhash, find_duplicates

    rng = np.random.default_rng(3)
    base = rng.integers(0, 2, (8, 8)).astype(bool)
    flips = rng.permutation(64)
    train = _dhash_image(base)[None]
    test = []
    for n in (4, 5, 6):
        bits = base.copy().ravel()
        bits[flips[:n]] ^= True
        test.append(_dhash_image(bits.reshape(8, 8)))
    test = np.stack(test)
    for img, n in zip(test, (4, 5, 6), strict=True):  # the images have the distances they claim
        assert bin(dhash(img) ^ dhash(train[0])).count("1") == n
    found = find_duplicates(
        {
            "train": (lambda i: train[i], 1, lambda i: f"train[{i}]", train),
            "test": (lambda i: test[i], 3, lambda i: f"test[{i}]", test),
        },
        mode="near",
    )
    assert NEAR_THRESHOLD == 5 and found["near_threshold_bits"] == 5
    assert found["near_across"]["train/test"] == {
        "count": 2,
        "examples": [["train[0]", "test[0]"], ["train[0]", "test[1]"]],
    }
