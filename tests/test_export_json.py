"""export.json alone reproduces the preprocessing: an image file, prepared with PIL and numpy from
export.json's `preprocessing` (no litvision import on that path) and run in onnxruntime, gives the
checkpoint's own output (the task predict rebuilds, on the image predict prepares) within 1e-4, for
digits_cnn, a ResNet (random init) and a detector (YOLOv1 on the shapes).

The test images are twice the size they are resized to: Pillow's and torchvision's antialiased
bilinear kernels are the same filter, but at a non-integer factor they round a few pixels to the
next grey level, which is one step of 1/255 (a deployer resizing with Pillow sees that, not a bug).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import compose_cfg

LIMITS = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=1",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "logger=csv",
]


# -- the deployer's side: PIL and numpy, export.json only -------------------------------------
def prepare(image_file: Path, steps: dict[str, Any]) -> np.ndarray:
    """export.json's `preprocessing` applied to one image file -> a (1, C, H, W) float32 batch."""
    from PIL import Image

    im = Image.open(image_file).convert("RGB")
    resize = steps["resize"]
    if resize is not None:
        assert resize["interpolation"] == "bilinear" and resize["antialias"]
        if resize["mode"] == "exact":
            h, w = resize["size"]
        else:  # the shorter side to `size`, the longer in proportion (rounded down)
            width, height = im.size
            s = resize["size"]
            h, w = (int(s * height / width), s) if width <= height else (s, int(s * width / height))
        im = im.resize((w, h), Image.BILINEAR)
    a = np.asarray(im).astype(np.float32)
    if steps["center_crop"]:
        ch, cw = steps["center_crop"]
        top, left = round((a.shape[0] - ch) / 2), round((a.shape[1] - cw) / 2)
        a = a[top : top + ch, left : left + cw]
    a = a * np.float32(steps["scale"])
    if steps["channel_order"] == "L":
        a = (a @ np.asarray(steps["grey_weights"], dtype=np.float32))[..., None]
    if steps["mean"] is not None:
        a = (a - np.asarray(steps["mean"], np.float32)) / np.asarray(steps["std"], np.float32)
    assert steps["layout"] == "CHW"
    return a.transpose(2, 0, 1)[None].astype(np.float32)


def onnx_outputs(export_dir: Path, image_file: Path) -> tuple[dict[str, Any], list[np.ndarray]]:
    import onnxruntime as ort

    record = json.loads((export_dir / "export.json").read_text())
    x = prepare(image_file, record["preprocessing"])
    assert list(x.shape[1:]) == record["preprocessing"]["input_size"]
    if record["task"] == "detection":
        x = x[0]  # one image per call
    sess = ort.InferenceSession(str(export_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    return record, sess.run(None, {sess.get_inputs()[0].name: x})


# -- the checkpoint's side: what predict does -----------------------------------------------------
def checkpoint_outputs(ckpt_path: Path, image_file: Path, size: tuple[int, int]) -> list[torch.Tensor]:
    from litvision.data.pipeline.decode import read_rgb
    from litvision.tasks.restore import load_task, preprocessing
    from litvision.utils.safe_load import load_checkpoint

    ckpt = load_checkpoint(ckpt_path)
    task, kind = load_task(ckpt, ckpt_path)
    x = preprocessing(ckpt, ckpt_path).at_size(*size).transform()(read_rgb(image_file))
    with torch.no_grad():
        if kind == "classification":
            return [task(x[None])]
        out = task.net([x])[0]
    return [out["boxes"], out["scores"], out["labels"]]


def _image(path: Path, h: int, w: int, seed: int) -> Path:
    """A smooth colour image with some edges (a photo-like test input), saved as PNG."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    planes = [np.sin(6 * xx + p) * np.cos(5 * yy - p) for p in rng.uniform(0, 3, 3)]
    rgb = (np.stack(planes, -1) * 100 + 128 + rng.normal(0, 10, (h, w, 3))).clip(0, 255).astype(np.uint8)
    Image.fromarray(rgb, "RGB").save(path)
    return path


def _train_and_export(tmp: Path, overrides: list[str]) -> tuple[Path, Path]:
    from litvision.deploy.export import export_checkpoint
    from litvision.train import train

    summary = train(compose_cfg([*overrides, *LIMITS], tmp / "runs"))
    export_checkpoint(Path(summary["run_dir"]), "onnx", tmp / "onnx")
    return Path(summary["best_checkpoint"]), tmp / "onnx"


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _train_and_export(tmp_path_factory.mktemp("digits"), ["experiment=digits_cnn"])


@pytest.fixture(scope="module")
def resnet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from litvision.data.fixtures import fixture_maker

    tmp = tmp_path_factory.mktemp("resnet")
    data = fixture_maker("flowers")(tmp / "data")
    # Random init (no download); resize the shorter side to 64, centre-crop 56, ImageNet statistics.
    net = ["model.net.arch=resnet18", "model.net.weights=null", "data.image_size=56", "data.resize_size=64"]
    return _train_and_export(tmp, ["experiment=resnet50_flowers", *net, *data])


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from litvision.data.fixtures import fixture_maker

    tmp = tmp_path_factory.mktemp("yolo")
    data = fixture_maker("shapes_voc")(tmp / "data")
    return _train_and_export(tmp, ["experiment=yolov1_shapes", "test=false", *data])


def test_digits_cnn_export_json_alone_reproduces_the_checkpoint(
    digits: tuple[Path, Path], tmp_path: Path
) -> None:
    """Catches: export.json without the data's mean/std (`"mean": null`, today's digits export), and
    the grey conversion left out of it (channel_order RGB for a 1-channel model: 3 values per pixel)."""
    ckpt, out = digits
    image = _image(tmp_path / "digit.png", 16, 16, seed=1)
    record, (logits,) = onnx_outputs(out, image)
    steps = record["preprocessing"]
    assert steps["mean"] and steps["std"] and steps["channel_order"] == "L"
    # Digits go through the shared classification pipeline: shorter side to 8, centre crop 8x8.
    assert steps["resize"] == {
        "size": 8,
        "mode": "shorter_side",
        "interpolation": "bilinear",
        "antialias": True,
    }
    assert steps["center_crop"] == [8, 8] and steps["input_size"] == [1, 8, 8]
    (expected,) = checkpoint_outputs(ckpt, image, (8, 8))
    assert np.abs(logits - expected.numpy()).max() <= 1e-4


def test_resnet_export_json_alone_reproduces_the_checkpoint(
    resnet: tuple[Path, Path], tmp_path: Path
) -> None:
    """Catches: the centre crop missing from export.json (the resize alone gives 64x72, not 56x56),
    and ImageNet statistics swapped for the data's or none (the logits move by far more than 1e-4)."""
    ckpt, out = resnet
    image = _image(tmp_path / "photo.png", 128, 144, seed=2)
    record, (logits,) = onnx_outputs(out, image)
    steps = record["preprocessing"]
    assert steps["resize"]["mode"] == "shorter_side" and steps["resize"]["size"] == 64
    assert steps["center_crop"] == [56, 56] and steps["input_size"] == [3, 56, 56]
    assert steps["mean"] == pytest.approx([0.485, 0.456, 0.406])
    (expected,) = checkpoint_outputs(ckpt, image, (56, 56))
    assert np.abs(logits - expected.numpy()).max() <= 1e-4


def test_detector_export_json_alone_reproduces_the_checkpoint(
    detector: tuple[Path, Path], tmp_path: Path
) -> None:
    """Catches: a detector's export.json without its input size (resize null: the image reaches the
    graph at twice its size), and a mean/std applied outside a model that normalises inside."""
    ckpt, out = detector
    h, w = json.loads((out / "export.json").read_text())["preprocessing"]["input_size"][1:]
    image = _image(tmp_path / "scene.png", 2 * h, 2 * w, seed=3)
    record, got = onnx_outputs(out, image)
    steps = record["preprocessing"]
    assert steps["resize"]["size"] == [h, w] and steps["mean"] is None
    expected = checkpoint_outputs(ckpt, image, (h, w))
    assert len(expected[0]) > 0  # boxes to compare
    order = np.argsort(-got[1], kind="stable")
    ref = np.argsort(-expected[1].numpy(), kind="stable")
    assert np.abs(got[0][order] - expected[0].numpy()[ref]).max() <= 1e-4
    assert np.abs(got[1][order] - expected[1].numpy()[ref]).max() <= 1e-4
    assert (got[2][order] == expected[2].numpy()[ref]).all()


def test_a_checkpoint_from_before_the_record_exports_the_same_preprocessing(
    digits: tuple[Path, Path], tmp_path: Path
) -> None:
    """A checkpoint written by earlier main (no model/weights/dataset/preprocessing in its record)
    gets the preprocessing its DataModule implies: the same steps as a recorded one.
    Catches: the fallback reading the wrong DataModule settings (ImageNet's 224 for the digits), and
    refusing a checkpoint only because it predates the record."""
    from litvision.deploy.export import export_checkpoint

    ckpt_path, out = digits
    old = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    for key in ("model", "weights", "dataset", "preprocessing"):
        old["litvision"].pop(key)
    old_path = tmp_path / "old.ckpt"
    torch.save(old, old_path)
    record = export_checkpoint(old_path, "onnx", tmp_path / "onnx")
    assert record["preprocessing"] == json.loads((out / "export.json").read_text())["preprocessing"]
