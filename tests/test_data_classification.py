"""Classification DataModules on data written in each dataset's real on-disk format.

What was written comes back (pixels, labels, class names), splits are stratified and
seeded, the weighted sampler balances classes, each bad input gets its message, and
the small CNN trains for one batch on every DataModule with the real Trainer.
"""

from __future__ import annotations

import logging
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_cfg

from litvision.data.catalog import datasets
from litvision.data.fixtures import classification as fx
from litvision.data.fixtures import fixture_maker
from litvision.errors import UserError

# No augmentation: the datasets yield the stored uint8 pixels (batches are normalised after collation).
RAW = ["data.train_crop=none", "data.hflip=0.0"]


def datamodule(overrides: list[str], runs_dir: Path, setup: bool = True):
    from litvision.build import build_datamodule

    dm = build_datamodule(compose_cfg(overrides, runs_dir))
    if setup:
        dm.prepare_data()
        dm.setup("fit")
    return dm


def all_items(ds) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*(ds[i] for i in range(len(ds))), strict=True)
    return torch.stack(xs).numpy(), np.asarray(ys)


# -- MNIST ------------------------------------------------------------------------------------
def test_mnist_reads_idx_files_exactly(tmp_path: Path, runs_dir: Path) -> None:
    rng = np.random.default_rng(0)
    ytr, yte = fx.balanced_labels(10, 10), fx.balanced_labels(10, 2)
    xtr = rng.integers(0, 256, (len(ytr), 28, 28), dtype=np.uint8)
    xte = rng.integers(0, 256, (len(yte), 28, 28), dtype=np.uint8)
    raw = fx.write_mnist(tmp_path, (xtr, ytr), (xte, yte), gzip_test=True)
    assert (raw / "t10k-images-idx3-ubyte.gz").is_file() and (raw / "train-images-idx3-ubyte").is_file()

    dm = datamodule(["data=mnist", f"data.root={tmp_path}", "data.num_workers=0", *RAW], runs_dir)
    assert (dm.num_classes, dm.in_channels, dm.class_names) == (10, 1, [str(i) for i in range(10)])
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 90, "val": 10, "test": 20}
    x, y = all_items(dm.datasets["test"])
    assert x.shape == (20, 1, 28, 28) and x.dtype == np.uint8
    np.testing.assert_array_equal(x[:, 0], xte)
    np.testing.assert_array_equal(y, yte)
    # Train and val are disjoint views of the training file, and every image keeps its label.
    tr, va = dm.datasets["train"], dm.datasets["val"]
    assert sorted([*tr.indices, *va.indices]) == list(range(100))
    xv, yv = all_items(va)
    np.testing.assert_array_equal(xv[:, 0], xtr[va.indices])
    np.testing.assert_array_equal(yv, ytr[va.indices])


def test_mnist_default_normalisation(tmp_path: Path, runs_dir: Path) -> None:
    fx.write_mnist(
        tmp_path,
        (np.full((20, 28, 28), 255, np.uint8), fx.balanced_labels(10, 2)),
        (np.zeros((10, 28, 28), np.uint8), fx.balanced_labels(10, 1)),
    )
    base = ["data=mnist", f"data.root={tmp_path}", "data.num_workers=0", "data.val_fraction=0.5"]
    dm = datamodule([*base, "data.normalize_on=device"], runs_dir)
    assert dm.mean == (0.1307,) and dm.std == (0.3081,)
    # A uint8 batch is normalised after it reaches the device (Lightning's batch hook) ...
    x, y = next(iter(dm.test_dataloader()))
    assert x.dtype == torch.uint8
    x, y2 = dm.on_after_batch_transfer((x, y), 0)
    assert x.dtype == torch.float32 and torch.equal(y, y2)
    assert torch.allclose(x, torch.full_like(x, -0.1307 / 0.3081))
    # ... or in the loader worker after collation: what "auto" picks without a Trainer on an accelerator.
    dm = datamodule([*base, "data.num_workers=1"], runs_dir)
    x, _ = next(iter(dm.val_dataloader()))
    assert x.dtype == torch.float32 and torch.allclose(x, torch.full_like(x, (1 - 0.1307) / 0.3081))
    assert dm.on_after_batch_transfer((x, y), 0)[0] is x


def test_batch_normalisation_equals_per_image_todtype_normalize() -> None:
    from torchvision.transforms import v2

    from litvision.data.transforms.classification import NormalizingCollate

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    images = [torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8) for _ in range(4)]
    x, y = NormalizingCollate(mean, std)([(im, i) for i, im in enumerate(images)])
    per_image = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])
    assert torch.equal(x, torch.stack([per_image(im) for im in images])) and y.tolist() == [0, 1, 2, 3]


def test_mnist_bad_files(tmp_path: Path, runs_dir: Path) -> None:
    from litvision.data.datasets.mnist import read_idx

    with pytest.raises(
        UserError, match=r"MNIST not found: .*MNIST/raw lacks train-images-idx3-ubyte.*data.root"
    ):
        datamodule(["data=mnist", f"data.root={tmp_path}", "data.download=false"], runs_dir)
    path = fx.write_idx(tmp_path / "x-idx3-ubyte", np.zeros((3, 4, 4), np.uint8))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(
        UserError, match=r"x-idx3-ubyte holds 43 bytes of data but its header says \(3, 4, 4\)"
    ):
        read_idx(path)
    with pytest.raises(UserError, match="data.num_classes=5 but the data has 10 classes"):
        datamodule(["data=mnist", f"data.root={tmp_path}", "data.num_classes=5"], runs_dir, setup=False)


# -- CIFAR ------------------------------------------------------------------------------------
def test_cifar10_reads_pickle_batches_exactly(tmp_path: Path, runs_dir: Path) -> None:
    rng = np.random.default_rng(1)
    batches = []
    for _ in range(5):
        y = fx.balanced_labels(10, 2)
        batches.append((rng.integers(0, 256, (len(y), 32, 32, 3), dtype=np.uint8), y))
    yte = np.array([9, 0, 3, 3, 1])
    xte = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    fx.write_cifar10(tmp_path, batches, (xte, yte), fx.CIFAR10_CLASSES)

    dm = datamodule(["data=cifar10", f"data.root={tmp_path}", "data.num_workers=0", *RAW], runs_dir)
    assert dm.class_names == fx.CIFAR10_CLASSES and dm.in_channels == 3
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 90, "val": 10, "test": 5}
    x, y = all_items(dm.datasets["test"])
    # Rows are planar RGB: the tensor's (c, h, w) is the written image's [h, w, c].
    np.testing.assert_array_equal(x, xte.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(y, yte)
    # The five batches are concatenated in order.
    all_x = np.concatenate([b[0] for b in batches]).transpose(0, 3, 1, 2)
    val = dm.datasets["val"]
    xv, _ = all_items(val)
    np.testing.assert_array_equal(xv, all_x[val.indices])

    dm = datamodule(["data=cifar10", f"data.root={tmp_path}", "data.num_workers=0"], runs_dir)
    assert dm.mean == (0.4914, 0.4822, 0.4465) and dm.std == (0.247, 0.2435, 0.2616)


def test_cifar100_fine_labels_and_names(tmp_path: Path, runs_dir: Path) -> None:
    ytr = fx.balanced_labels(100, 10)
    names = [f"fine_{i}" for i in range(100)]
    fx.write_cifar100(
        tmp_path,
        (fx.class_images(ytr, 32, 32, 3, 0), ytr),
        (fx.class_images(ytr[:7], 32, 32, 3, 1), ytr[:7][::-1].copy()),
        names,
    )
    dm = datamodule(["data=cifar100", f"data.root={tmp_path}", "data.num_workers=0"], runs_dir)
    assert dm.num_classes == 100 and dm.class_names == names
    assert len(dm.datasets["val"]) == 100 and sorted(dm.datasets["val"].labels) == list(range(100))
    np.testing.assert_array_equal(dm.datasets["test"].labels, ytr[:7][::-1])


def test_cifar_alexnet_resize_224_bicubic(tmp_path: Path, runs_dir: Path) -> None:
    """The 32 px images reach 224 px through a bicubic resize: equal to torchvision's own bicubic
    resize of the stored image, and unlike its bilinear one.
    Catches: data.resize_interpolation ignored (the bilinear default used)."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    overrides = fx.make_cifar10(tmp_path)
    dm = datamodule(
        ["data=cifar10", *overrides, "data.image_size=224", "data.resize_interpolation=bicubic"], runs_dir
    )
    x, _ = dm.datasets["test"][0]
    xt, _ = dm.datasets["train"][0]
    assert x.shape == xt.shape == (3, 224, 224) and x.dtype == torch.uint8
    test = dm.datasets["test"]
    raw = test.source.image(int(test.indices[0]))
    assert tuple(raw.shape) == (3, 32, 32)
    bicubic = TF.resize(raw, [224, 224], interpolation=InterpolationMode.BICUBIC, antialias=True)
    bilinear = TF.resize(raw, [224, 224], interpolation=InterpolationMode.BILINEAR, antialias=True)
    assert torch.equal(x, bicubic)
    assert not torch.equal(x, bilinear)


def test_cifar_bad_files(tmp_path: Path, runs_dir: Path) -> None:
    with pytest.raises(
        UserError, match=r"CIFAR10 not found: .*cifar-10-batches-py lacks data_batch_1.*data.root"
    ):
        datamodule(["data=cifar10", f"data.root={tmp_path}", "data.download=false"], runs_dir)
    y = fx.balanced_labels(10, 1)
    x = np.zeros((10, 32, 32, 3), np.uint8)
    base = fx.write_cifar10(tmp_path, [(x, y)] * 5, (x, y + 1), fx.CIFAR10_CLASSES)
    with pytest.raises(UserError, match=r"test_batch have labels outside 0..9"):
        datamodule(["data=cifar10", f"data.root={tmp_path}"], runs_dir)
    (base / "batches.meta").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match=r"batches.meta is not a readable CIFAR pickle"):
        datamodule(["data=cifar10", f"data.root={tmp_path}"], runs_dir)


# -- image folders ----------------------------------------------------------------------------
def test_image_folder_classes_labels_and_modes(tmp_path: Path, runs_dir: Path) -> None:
    from PIL import Image

    overrides = fx.make_image_folder(tmp_path)
    root = tmp_path / "image_folder"
    cfg = compose_cfg(["data=image_folder", *overrides], runs_dir)
    assert cfg.data.num_classes == 3 and cfg.model.num_classes == 3  # counted from the folder
    dm = datamodule(
        ["data=image_folder", *overrides, *RAW, "data.image_size=40", "data.resize_size=40"], runs_dir
    )
    assert dm.class_names == ["cat", "dog", "fish"]
    source = dm.datasets["train"].source
    assert len(source) == 28
    for path, label in zip(source.paths, source.labels, strict=True):
        assert path.parent.name == dm.class_names[label]
    by_name = {p.name: i for i, p in enumerate(source.paths)}
    for name, mode in (("gray.jpg", "L"), ("cmyk.jpg", "CMYK"), ("rgba.png", "RGBA"), ("palette.png", "P")):
        img = source.image(by_name[name])
        assert img.shape == (3, 40, 48) and img.dtype == torch.uint8
        with Image.open(next(root.rglob(name))) as im:
            assert im.mode == mode
            if mode == "RGBA":  # composited on white, as a viewer shows it (tests/test_image_forms.py)
                im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im)
            expected = np.asarray(im.convert("RGB")).transpose(2, 0, 1)
        assert np.abs(img.numpy().astype(int) - expected.astype(int)).max() <= 1, name
    x, _ = dm.datasets["train"][0]
    assert x.shape == (3, 40, 40) and x.dtype == torch.uint8


def test_image_folder_split_is_stratified_and_seeded(tmp_path: Path, runs_dir: Path) -> None:
    root = tmp_path / "imgs"
    fx.write_class_folder(root, ["a", "b", "c", "d"], per_class=10, size=(8, 8))
    base = ["data=image_folder", f"data.root={root}", "data.val_fraction=0.2", "data.test_fraction=0.1"]
    dm1 = datamodule([*base, "seed=1"], runs_dir)
    dm2 = datamodule([*base, "seed=1"], runs_dir)
    dm3 = datamodule([*base, "seed=2"], runs_dir)
    for name, per_class in (("train", 7), ("val", 2), ("test", 1)):
        assert np.bincount(dm1.datasets[name].labels).tolist() == [per_class] * 4
        np.testing.assert_array_equal(dm1.datasets[name].indices, dm2.datasets[name].indices)
    parts = [set(dm1.datasets[n].indices.tolist()) for n in ("train", "val", "test")]
    assert set.union(*parts) == set(range(40)) and sum(map(len, parts)) == 40
    assert set(dm1.datasets["val"].indices) != set(dm3.datasets["val"].indices)


def test_image_folder_test_dir(tmp_path: Path, runs_dir: Path) -> None:
    fx.write_class_folder(tmp_path / "train", ["a", "b"], per_class=5, size=(8, 8))
    fx.write_class_folder(tmp_path / "test", ["a", "b"], per_class=2, size=(8, 8), ext=".png")
    fx.write_class_folder(tmp_path / "wrong", ["a", "c"], per_class=2, size=(8, 8))
    base = ["data=image_folder", f"data.root={tmp_path / 'train'}"]
    dm = datamodule([*base, f"data.test_dir={tmp_path / 'test'}"], runs_dir)
    assert len(dm.datasets["test"]) == 4 and dm.datasets["test"].labels.tolist() == [0, 0, 1, 1]
    with pytest.raises(
        UserError, match=r"wrong has classes \['a', 'c'\] but the training folder has \['a', 'b'\]"
    ):
        datamodule([*base, f"data.test_dir={tmp_path / 'wrong'}"], runs_dir)


def test_weighted_sampler_balances_classes(tmp_path: Path, runs_dir: Path) -> None:
    from litvision.data.pipeline.samplers import EpochShuffleSampler, EpochWeightedSampler

    root = tmp_path / "imbalanced"
    for name, n in (("common", 40), ("rare", 4), ("medium", 12)):
        fx.write_class_folder(root, [name], per_class=n, size=(8, 8))
    base = ["data=image_folder", f"data.root={root}", "data.val_fraction=0.25"]
    dm = datamodule([*base, "data.sampler=weighted"], runs_dir)
    labels = dm.datasets["train"].labels
    assert np.bincount(labels).tolist() == [30, 9, 3]  # common, medium, rare
    sampler = dm.train_dataloader().sampler
    assert isinstance(sampler, EpochWeightedSampler) and sampler.replacement
    drawn = []
    for epoch in range(30):
        sampler.set_epoch(epoch)
        drawn += list(sampler)
    counts = np.bincount(labels[drawn], minlength=3) / len(drawn)
    assert np.allclose(counts, 1 / 3, atol=0.04), counts
    sampler.set_epoch(3)
    assert list(sampler) == list(sampler)  # seeded by (seed, epoch)
    assert isinstance(datamodule(base, runs_dir).train_dataloader().sampler, EpochShuffleSampler)


def _write_bad(path: Path, kind: str) -> Path:
    if kind == "garbage":
        path.write_bytes(b"this is not a jpeg")
    else:
        fx.write_image(path, np.zeros((16, 16, 3), np.uint8))
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


@pytest.mark.parametrize("kind", ["garbage", "truncated"])
def test_image_folder_corrupt_files(kind: str, tmp_path: Path, runs_dir: Path, caplog) -> None:
    root = tmp_path / "imgs"
    fx.write_class_folder(root, ["a", "b"], per_class=5, size=(8, 8))
    bad = _write_bad(root / "b" / "broken.jpg", kind)
    base = ["data=image_folder", f"data.root={root}"]
    why = "not an image PIL can identify" if kind == "garbage" else "(?i:truncated)"
    with pytest.raises(UserError, match=rf"1 unreadable image file\(s\): {bad} \(.*{why}.*skip_corrupt=true"):
        datamodule(base, runs_dir)
    with caplog.at_level(logging.WARNING):
        dm = datamodule([*base, "data.skip_corrupt=true"], runs_dir)
    assert dm.skipped == 1 and len(dm.datasets["train"].source) == 10
    assert "Skipping 1 unreadable image file(s)" in caplog.text and str(bad) in caplog.text
    # With the up-front check off, the file fails when it is read, still by name.
    dm = datamodule([*base, "data.check_files=false", "data.val_fraction=0.5"], runs_dir)
    source = dm.datasets["train"].source
    with pytest.raises(UserError, match=rf"Cannot decode image {bad} .*skip_corrupt=true"):
        source.image(source.paths.index(bad))


def test_image_folder_bad_layouts(tmp_path: Path, runs_dir: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(
        UserError, match=rf"Image folder not found: {missing}\. Set data.root to a folder with one"
    ):
        datamodule(["data=image_folder", f"data.root={missing}"], runs_dir, setup=False)

    flat = tmp_path / "flat"
    fx.write_image(flat / "a.jpg", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(UserError, match=r"flat has no class sub-folders.* It has 1 images directly inside"):
        datamodule(["data=image_folder", f"data.root={flat}", "data.num_classes=1"], runs_dir)

    root = tmp_path / "imgs"
    fx.write_class_folder(root, ["a", "b"], per_class=3, size=(8, 8))
    (root / "c").mkdir()
    (root / "c" / "notes.txt").write_text("no images here")
    with pytest.raises(UserError, match=rf"Class folder {root / 'c'} has no images"):
        datamodule(["data=image_folder", f"data.root={root}"], runs_dir)

    (root / "c" / "notes.txt").unlink()
    (root / "c").rmdir()
    with pytest.raises(
        UserError, match=r"data.num_classes=5 but the data in .*imgs has 2 classes; set data.num_classes=2"
    ):
        datamodule(["data=image_folder", f"data.root={root}", "data.num_classes=5"], runs_dir, setup=False)
    with pytest.raises(UserError, match=r"data.augment='autoaugment' is not one of"):
        datamodule(
            ["data=image_folder", f"data.root={root}", "data.augment=autoaugment"], runs_dir, setup=False
        )


# -- flowers ----------------------------------------------------------------------------------
def test_flowers_recipe_transforms(tmp_path: Path, runs_dir: Path) -> None:
    overrides = fx.make_flowers(tmp_path)
    # The recipe the ImageNet weights of resnet50_flowers bring (the small default CNN would train the
    # fixture's 60 px photos at their own size: litvision.data.pipeline.choose).
    dm = datamodule(["experiment=resnet50_flowers", *overrides], runs_dir)
    assert dm.class_names == fx.FLOWER_CLASSES and dm.num_classes == 5
    assert dm.mean == (0.485, 0.456, 0.406) and dm.std == (0.229, 0.224, 0.225)
    assert np.bincount(dm.datasets["val"].labels).tolist() == [1] * 5  # 20% of 5 per class
    names = [type(t).__name__ for t in dm.datasets["train"].transform.transforms]
    assert names == ["RandomResizedCrop", "RandomHorizontalFlip"]
    ev = dm.datasets["val"].transform.transforms
    assert [type(t).__name__ for t in ev] == ["Resize", "CenterCrop"]
    assert ev[0].size == [256] and ev[1].size == (224, 224)
    x, _ = next(iter(dm.val_dataloader()))
    assert x.shape == (4, 3, 224, 224) and x.dtype == torch.float32


def test_flowers_download_is_verified(tmp_path: Path, runs_dir: Path, monkeypatch) -> None:
    """The real download path (streamed download, sha256, extraction) fed from a local archive."""
    import litvision.data.datasets.flowers as flowers
    from litvision.data.pipeline.download import sha256sum

    fx.make_flowers(tmp_path / "src")
    archive = tmp_path / "flower_photos.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "flower_photos", arcname="flower_photos")
    root = tmp_path / "data" / "flower_photos"
    monkeypatch.setattr(flowers, "URL", archive.as_uri())
    monkeypatch.setattr(flowers, "SHA256", "0" * 64)
    with pytest.raises(UserError, match=r"downloaded with sha256 [0-9a-f]{64}, expected 0000"):
        datamodule(["data=flowers", f"data.root={root}"], runs_dir)
    assert not root.exists()
    monkeypatch.setattr(flowers, "SHA256", sha256sum(archive))
    dm = datamodule(["data=flowers", f"data.root={root}", "data.num_workers=0"], runs_dir)
    assert dm.class_names == fx.FLOWER_CLASSES and len(dm.datasets["train"].source) == 25
    with pytest.raises(
        UserError, match=r"flower_photos not found at .*nothere; keep data.download=true .*curl -LO"
    ):
        datamodule(
            ["data=flowers", f"data.root={tmp_path / 'nothere'}", "data.download=false"],
            runs_dir,
            setup=False,
        )


# -- transforms -------------------------------------------------------------------------------
@pytest.mark.parametrize("augment", ["randaugment", "trivialaugment"])
def test_policy_augmentations_on_uint8(augment: str, tmp_path: Path, runs_dir: Path) -> None:
    """The train pipeline is the plain one plus the policy (RandAugment with the configured num_ops
    and magnitude, or TrivialAugmentWide), which changes the images; eval images are untouched.
    Catches: data.augment ignored, or RandAugment built with its defaults (2 ops, magnitude 9)
    instead of data.augment_num_ops=3 / data.augment_magnitude=13."""
    from torchvision.transforms import v2

    policy = {"randaugment": v2.RandAugment, "trivialaugment": v2.TrivialAugmentWide}[augment]
    knobs = ["data.augment_num_ops=3", "data.augment_magnitude=13"]
    for name in ("mnist", "cifar10"):
        overrides = fixture_maker(name)(tmp_path)
        dm = datamodule([f"data={name}", *overrides, f"data.augment={augment}", *knobs], runs_dir)
        plain = datamodule([f"data={name}", *overrides, "data.augment=none", *knobs], runs_dir)
        ops = dm.datasets["train"].transform.transforms
        (found,) = [t for t in ops if isinstance(t, policy)]
        if augment == "randaugment":
            assert (found.num_ops, found.magnitude) == (3, 13)
        rest = [type(t) for t in ops if t is not found]
        assert rest == [type(t) for t in plain.datasets["train"].transform.transforms]
        # The same seed for both pipelines: crops and flips draw alike, the policy alone differs.
        changed = 0
        for i in range(16):
            torch.manual_seed(i)
            x, _ = dm.datasets["train"][i]
            torch.manual_seed(i)
            y, _ = plain.datasets["train"][i]
            assert x.dtype == torch.uint8 and x.shape == y.shape and x.shape[0] == dm.in_channels
            changed += int(not torch.equal(x, y))
        assert changed >= 10, f"{name}: the policy changed {changed} of 16 images"
        assert torch.equal(dm.datasets["val"][0][0], plain.datasets["val"][0][0])
        x, _ = dm.datasets["train"][0]
        assert dm.normalize(x).dtype == torch.float32


# -- training on every DataModule -------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(datasets("classification")))
def test_fast_dev_run_small_cnn(name: str, tmp_path: Path, runs_dir: Path) -> None:
    """Every classification dataset of the catalog, on its fixture, through the real Trainer."""
    from litvision.data.catalog import dataset
    from litvision.train import train

    spec = dataset(name)
    overrides = fixture_maker(name)(tmp_path)
    in_channels = spec.channels
    # Images of any size are cut to 64 px here: the small CNN's fixture run stays quick.
    extra = ["data.image_size=64", "data.resize_size=72"] if spec.native_size is None else []
    if name == "cifar10":
        extra = ["data.normalize_on=device"]  # uint8 batches, normalised by the DataModule's batch hook
    cfg = compose_cfg(
        [
            "model=small_cnn",
            f"data={name}",
            *overrides,
            *extra,
            f"model.net.in_channels={in_channels}",
            "model.net.width=8",
            "debug=fast_dev_run",
        ],
        runs_dir,
    )
    summary = train(cfg)
    assert summary["global_step"] == 1 and "test/acc" in summary["test"]
