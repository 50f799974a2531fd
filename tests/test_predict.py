"""`run_predict` for classification (top-k CSV/JSON) and detection (boxes, COCO JSON); bad and
over-limit images skipped with a warning or refused in one line; checkpoints that are not safe
or not this experiment's refused before anything runs."""

from __future__ import annotations

import csv
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_cfg
from test_safe_load import assert_one_line, write_payload_checkpoint

from litvision.commands.predict import run_predict
from litvision.data.fixtures import fixture_maker
from litvision.errors import UserError


# -- image files ---------------------------------------------------------------------------------
def write_huge_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A valid all-black 1-bit greyscale PNG of width x height: 50 MB of pixels, ~50 kB on disk."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    row = b"\x00" + bytes((width + 7) // 8)  # filter byte "none", then the row's bits
    z = zlib.compressobj(9)
    pixels = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )
    return path


def write_corrupt_jpeg(path: Path) -> Path:
    """A JPEG whose header and end marker are intact (it passes the up-front check) but whose Huffman
    table is bogus, so decoding it fails."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    dht = data.find(b"\xff\xc4")
    data[dht + 5 : dht + 21] = b"\xff" * 16  # code-length counts no table can have
    path.write_bytes(bytes(data))
    return path


def write_digit_pngs(folder: Path, n: int = 12) -> tuple[list[Path], np.ndarray]:
    """The first n of scikit-learn's digits as 8x8 greyscale PNGs (values 0..16 scaled to 0..255)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    folder.mkdir(parents=True, exist_ok=True)
    x, _ = load_digits(return_X_y=True)
    x = x[:n].reshape(n, 8, 8)
    paths = []
    for i, img in enumerate(x):
        p = folder / f"digit_{i:02d}.png"
        Image.fromarray(np.round(img * 255 / 16).astype(np.uint8), mode="L").save(p)
        paths.append(p)
    return paths, x


# -- classification ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_ckpt(tmp_path_factory) -> Path:
    from litvision.train import train

    runs = tmp_path_factory.mktemp("predict_cls") / "runs"
    summary = train(
        compose_cfg(["experiment=digits_cnn", "debug=limit", "trainer.max_epochs=2", "test=false"], runs)
    )
    return Path(summary["best_checkpoint"])


def predict_cfg(ckpt: Path, images: Path, runs: Path, *extra: str, experiment: str = "digits_cnn"):
    return compose_cfg(
        [f"experiment={experiment}", f"ckpt_path={ckpt}", f"input={images}", *extra],
        runs,
        config_name="predict",
    )


def test_classification_top_k(digits_ckpt: Path, tmp_path: Path, capfd) -> None:
    """Catches: preprocessing that differs from training (the probabilities would not match the
    model's on the training tensors), a wrong top-k order, bad files stopping the run, warnings
    that never reach the terminal, and skipped files missing from the summary."""
    from litvision.data.datasets.digits import DIGITS_MEAN, DIGITS_STD
    from litvision.tasks.classification import ClassificationTask

    images = tmp_path / "images"
    paths, raw = write_digit_pngs(images)
    (images / "garbage.jpg").write_bytes(b"this is not a jpeg")
    corrupt = write_corrupt_jpeg(images / "corrupt.jpg")
    huge = write_huge_png(images / "huge.png")
    run_dir = tmp_path / "run"
    summary = run_predict(predict_cfg(digits_ckpt, images, tmp_path / "runs", "top_k=3"), run_dir)

    assert summary["model_task"] == "classification" and summary["images"] == len(paths)
    assert summary["top_k"] == 3 and summary["class_names"] == [str(i) for i in range(10)]
    skipped = {Path(s["file"]).name: s["reason"] for s in summary["skipped"]}
    assert set(skipped) == {"garbage.jpg", "corrupt.jpg", "huge.png"}
    assert "not an image that can be read" in skipped["garbage.jpg"]
    assert "cannot be decoded" in skipped["corrupt.jpg"]
    assert "20000x20000 = 400,000,000 pixels, over max_pixels=50,000,000" in skipped["huge.png"]
    err = capfd.readouterr().err
    for bad in (images / "garbage.jpg", corrupt, huge):
        assert f"warning: Skipping image {bad}" in err

    rows = json.loads((run_dir / "predictions.json").read_text())
    assert [r["file"] for r in rows] == [p.name for p in paths]
    with open(run_dir / "predictions.csv", newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == ["file", "class_1", "prob_1", "class_2", "prob_2", "class_3", "prob_3"]
    assert len(table) == 1 + len(paths)

    # The same images as the training data saw them, through the model loaded by Lightning.
    task = ClassificationTask.load_from_checkpoint(digits_ckpt, map_location="cpu").eval()
    x = (torch.tensor(raw, dtype=torch.float32).unsqueeze(1) / 16.0 - DIGITS_MEAN) / DIGITS_STD
    with torch.no_grad():
        expected = task(x).softmax(-1).numpy()
    for row, csv_row, probs in zip(rows, table[1:], expected, strict=True):
        got = [(t["index"], t["prob"]) for t in row["top_k"]]
        assert [p for _, p in got] == sorted((p for _, p in got), reverse=True)
        for index, prob in got:
            assert prob == pytest.approx(probs[index], abs=0.02)
        assert sorted(probs, reverse=True)[0] == pytest.approx(got[0][1], abs=0.02)
        assert csv_row[0] == row["file"] and csv_row[1] == row["top_k"][0]["class"]
        assert float(csv_row[2]) == pytest.approx(row["top_k"][0]["prob"])


def test_on_bad_image_stop_and_pixel_limit(digits_ckpt: Path, tmp_path: Path) -> None:
    """Catches: on_bad_image=stop ignored, or a pixel limit that is not compared with the header's size."""
    images = tmp_path / "images"
    write_digit_pngs(images, n=2)
    runs = tmp_path / "runs"
    # 8x8 = 64 pixels: over a limit of 63, within one of 64.
    with pytest.raises(UserError) as err:
        run_predict(
            predict_cfg(digits_ckpt, images, runs, "max_pixels=63", "on_bad_image=stop"), tmp_path / "a"
        )
    assert_one_line(
        err, "digit_00.png: it is 8x8 = 64 pixels, over max_pixels=63", "max_pixels=64", "on_bad_image=skip"
    )
    summary = run_predict(predict_cfg(digits_ckpt, images, runs, "max_pixels=63"), tmp_path / "b")
    assert summary["images"] == 0 and len(summary["skipped"]) == 2
    assert run_predict(predict_cfg(digits_ckpt, images, runs, "max_pixels=64"), tmp_path / "c")["images"] == 2

    write_huge_png(images / "huge.png")
    with pytest.raises(UserError) as err:
        run_predict(predict_cfg(digits_ckpt, images, runs, "on_bad_image=stop"), tmp_path / "d")
    assert_one_line(err, f"Image {images / 'huge.png'}: it is 20000x20000", "over max_pixels=50,000,000")
    (images / "huge.png").unlink()
    write_corrupt_jpeg(images / "corrupt.jpg")
    with pytest.raises(UserError) as err:
        run_predict(predict_cfg(digits_ckpt, images, runs, "on_bad_image=stop"), tmp_path / "e")
    assert_one_line(err, f"Image {images / 'corrupt.jpg'}: it cannot be decoded", "on_bad_image=skip")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("top_k=0", "top_k=0 must be a positive whole number"),
        ("max_pixels=-5", "max_pixels=-5 must be a positive whole number"),
        ("on_bad_image=ignore", "on_bad_image='ignore' is not one of skip, stop"),
        ("score_thresh=2", "score_thresh=2 must be a number in [0, 1]"),
    ],
)
def test_bad_settings_are_one_line(digits_ckpt: Path, tmp_path: Path, override: str, message: str) -> None:
    """Catches: a predict key's value going unchecked (remove its check in check_predict_config)."""
    images = tmp_path / "images"
    write_digit_pngs(images, n=1)
    with pytest.raises(UserError) as err:
        run_predict(predict_cfg(digits_ckpt, images, tmp_path / "runs", override), tmp_path / "run")
    assert_one_line(err, message)


def test_unsafe_or_foreign_checkpoints_are_refused(digits_ckpt: Path, tmp_path: Path) -> None:
    """Catches: predict loading with weights_only=False (the marker appears), instantiating a network
    `_target_` from a checkpoint without checking it (the marker appears), or predicting with a
    checkpoint of another experiment."""
    from hydra.utils import instantiate

    from litvision.utils.safe_load import load_checkpoint

    images = tmp_path / "images"
    write_digit_pngs(images, n=1)
    runs, marker = tmp_path / "runs", tmp_path / "pwned"

    payload = write_payload_checkpoint(tmp_path / "payload.ckpt", marker)
    with pytest.raises(UserError) as err:
        run_predict(predict_cfg(payload, images, runs), tmp_path / "run1")
    assert_one_line(err, str(payload), "refuses to execute code")
    assert not marker.exists()

    # Plain data can name code too: a network config with a nested `_target_` that writes a file.
    ckpt = load_checkpoint(digits_ckpt)
    command = {"_target_": "pathlib.Path.touch", "_args_": [str(marker)]}
    ckpt["hyper_parameters"]["net"]["init"] = command
    torch.save(ckpt, tmp_path / "targets.ckpt")
    instantiate(command)  # the config is live: instantiating it runs the command
    assert marker.exists()
    marker.unlink()
    with pytest.raises(UserError) as err:
        run_predict(predict_cfg(tmp_path / "targets.ckpt", images, runs), tmp_path / "run2")
    assert_one_line(err, "names 'pathlib.Path.touch' as its network", "litvision.models.*")
    assert not marker.exists()

    with pytest.raises(UserError) as err:
        run_predict(predict_cfg(digits_ckpt, images, runs, experiment="lenet_mnist"), tmp_path / "run3")
    assert_one_line(err, "experiment 'digits_cnn'", "experiment 'lenet_mnist'")
    assert not any((tmp_path / d / "predictions.csv").exists() for d in ("run1", "run2", "run3"))


def test_inference_transform_matches_eval_pipeline(tmp_path: Path, runs_dir: Path) -> None:
    """Catches: predict preparing a file-based DataModule's images differently from its eval loader
    (resize, crop, channels or normalisation)."""
    from litvision.build import build_datamodule
    from litvision.data.datasets.flowers import FlowersDataModule
    from litvision.data.pipeline.decode import read_rgb

    overrides = fixture_maker("flowers")(tmp_path)
    cfg = compose_cfg(["data=flowers", *overrides, "data.image_size=32", "data.resize_size=40"], runs_dir)
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    transform = FlowersDataModule.inference_transform(dict(dm.hparams))
    val = dm.datasets["val"]
    for i in range(3):
        image, _ = val[i]
        path = val.source.paths[int(val.indices[i])]
        assert torch.equal(transform(read_rgb(path)), dm.normalize(image))


# -- detection -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_detection_boxes_and_coco_json(tmp_path_factory, tmp_path: Path) -> None:
    """Catches: predict knowing only one kind of task, an unreadable image stopping detection, and
    image ids that shift when a file is skipped."""
    from litvision.train import train

    tmp = tmp_path_factory.mktemp("predict_det")
    overrides = fixture_maker("shapes_coco")(tmp / "data")
    summary = train(
        compose_cfg(
            [
                "experiment=fasterrcnn_shapes",
                "debug=limit",
                "trainer.max_epochs=1",
                "trainer.limit_train_batches=1",
                "trainer.limit_val_batches=1",
                "test=false",
                "model.net.min_size=64",
                "model.net.max_size=64",
                "model.net.score_thresh=0.0",
                *overrides,
            ],
            tmp / "runs",
        )
    )
    ckpt = Path(summary["best_checkpoint"])
    src = tmp / "data" / "shapes" / "coco" / "test"
    images = tmp_path / "images"
    images.mkdir()
    names = sorted(p.name for p in src.glob("*.jpg"))
    for name in names:
        (images / name).write_bytes((src / name).read_bytes())
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    run_dir = tmp_path / "run"
    out = run_predict(
        predict_cfg(ckpt, images, tmp_path / "runs", "score_thresh=0.0", experiment="fasterrcnn_shapes"),
        run_dir,
    )
    assert out["model_task"] == "detection" and out["images"] == len(names)
    assert [Path(s["file"]).name for s in out["skipped"]] == ["broken.png"]
    assert sorted(p.name for p in (run_dir / "images").glob("*.png")) == sorted(
        f"{Path(n).stem}.png" for n in names
    )
    id_map = {d["id"]: d["file_name"] for d in json.loads((run_dir / "images.json").read_text())}
    assert sorted(id_map.values()) == names
    results = json.loads((run_dir / "detections.json").read_text())
    assert out["detections"] == len(results) > 0
    for r in results:
        assert set(r) == {"image_id", "category_id", "bbox", "score"}
        assert r["image_id"] in id_map and r["category_id"] in (1, 2, 3)


def test_hflip_tta_in_predict_averages_image_and_mirror(digits_ckpt: Path, tmp_path: Path) -> None:
    """Catches: predict ignoring test_tta (the probabilities would be those of the image alone)."""
    from litvision.data.datasets.digits import DIGITS_MEAN, DIGITS_STD
    from litvision.tasks.classification import ClassificationTask

    images = tmp_path / "images"
    paths, raw = write_digit_pngs(images, n=4)
    run_dir = tmp_path / "run"
    summary = run_predict(
        predict_cfg(digits_ckpt, images, tmp_path / "runs", "top_k=10", "test_tta=hflip"), run_dir
    )
    assert summary["test_tta"] == "hflip"
    task = ClassificationTask.load_from_checkpoint(digits_ckpt, map_location="cpu").eval()
    x = (torch.tensor(raw, dtype=torch.float32).unsqueeze(1) / 16.0 - DIGITS_MEAN) / DIGITS_STD
    with torch.no_grad():
        plain = task(x).softmax(-1)
        mean = (plain + task(x.flip(-1)).softmax(-1)) / 2
    rows = json.loads((run_dir / "predictions.json").read_text())
    for row, want in zip(rows, mean, strict=True):
        got = {t["index"]: t["prob"] for t in row["top_k"]}
        # (PNG rounding of the 0..16 pixel values moves probabilities by ~1e-4.)
        assert max(abs(got[c] - float(want[c])) for c in range(10)) < 1e-3
    assert float((plain - mean).abs().max()) > 5e-3, "the mirror must change the probabilities"
