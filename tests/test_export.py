"""`litvision.deploy.export`: a trained digits_cnn and a torchvision detector exported to ONNX,
TorchScript and ExportedProgram compute what the checkpoint's PyTorch model computes; bad input is
one line and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import compose_cfg, run_cli

from litvision.deploy.export import FORMATS, detection_set_difference, export_checkpoint, main
from litvision.errors import UserError


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """digits_cnn trained for a few batches: a real run folder with summary.json and checkpoints."""
    from litvision.train import train

    runs = tmp_path_factory.mktemp("runs")
    cfg = compose_cfg(
        [
            "experiment=digits_cnn",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=4",
            "trainer.limit_val_batches=2",
            "trainer.limit_test_batches=1",
            "logger=csv",
        ],
        runs,
    )
    return train(cfg)


def _digits_batch(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    from litvision.data.datasets.digits import DigitsDataModule

    dm = DigitsDataModule()
    dm.setup()
    return next(iter(dm.test_dataloader()))[0][:n], dm


def _exported_logits(fmt: str, path: str, x: torch.Tensor) -> torch.Tensor:
    if fmt == "onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        return torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0])
    with torch.no_grad():
        if fmt == "torchscript":
            return torch.jit.load(path)(x)
        return torch.export.load(path).module()(x)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_digits_cnn_export_matches_the_checkpoint(digits_run: dict, tmp_path: Path, fmt: str) -> None:
    """Catches an export of the untrained net (weights not loaded), a fixed batch size, or a lying export.json."""
    from litvision.tasks.classification import ClassificationTask

    out = tmp_path / fmt
    record = export_checkpoint(Path(digits_run["run_dir"]), fmt, out)
    assert Path(record["file"]) == out / FORMATS[fmt] and (out / FORMATS[fmt]).stat().st_size > 1000
    written = json.loads((out / "export.json").read_text())
    assert written["parity_passed"] is True and written["max_abs_diff"] <= 1e-4
    assert written["checkpoint"] == str(Path(digits_run["best_checkpoint"]).resolve())
    assert [c["output_shapes"] for c in written["checks"]] == [[[2, 10]], [[3, 10]]]
    assert written["input"]["shape"] == ["N", 1, 8, 8] and written["outputs"] == {"logits": ["N", 10]}

    # Independently of export.json: real digits through the exported file and through the
    # checkpoint loaded by Lightning, at a batch size the export never saw.
    x, _ = _digits_batch(16)
    task = ClassificationTask.load_from_checkpoint(digits_run["best_checkpoint"], map_location="cpu").eval()
    with torch.no_grad():
        expected = task(x)
    got = _exported_logits(fmt, record["file"], x)
    assert got.shape == (16, 10)
    assert (got - expected).abs().max() <= 1e-4


def test_cli_exports_into_the_experiments_export_folder(digits_run: dict) -> None:
    """Catches the CLI writing into the (read-only) source run or printing more than its result line."""
    run = Path(digits_run["run_dir"])
    proc = run_cli("litvision.deploy.export", str(run), "--format", "onnx", check=True)
    (folder,) = (run.parent / "export").iterdir()
    assert (folder / "model.onnx").is_file() and (folder / "export.json").is_file()
    assert not (run / "export").exists()
    assert str(folder / "export.json") in proc.stdout


def _one_line_error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_missing_or_foreign_checkpoint_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Catches a stack trace, or an output folder made before the checkpoint is known to be litvision's."""
    out = tmp_path / "out"
    err = _one_line_error(capsys, [str(tmp_path / "nothere.ckpt"), "--out-dir", str(out)])
    assert "nothere.ckpt does not exist" in err

    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    err = _one_line_error(capsys, [str(foreign), "--out-dir", str(out)])
    assert "is not a litvision checkpoint" in err

    garbage = tmp_path / "garbage.ckpt"
    garbage.write_text("not a checkpoint")
    err = _one_line_error(capsys, [str(garbage), "--format", "torchscript", "--out-dir", str(out)])
    assert "is not a readable PyTorch checkpoint" in err  # the project's one safe loader says so

    empty_run = tmp_path / "run"
    empty_run.mkdir()
    err = _one_line_error(capsys, [str(empty_run), "--out-dir", str(out)])
    assert "holds no checkpoint" in err
    assert not out.exists()


def test_unknown_format_is_one_line(digits_run: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    err = _one_line_error(
        capsys, [digits_run["run_dir"], "--format", "tflite", "--out-dir", str(tmp_path / "o")]
    )
    assert "'tflite' is not one of onnx, torchscript, exported_program" in err
    assert not (tmp_path / "o").exists()


def test_detection_set_difference_ignores_order_and_sees_changes() -> None:
    """Catches an order-sensitive comparison (ties have no defined order) or one blind to a moved box."""
    boxes = torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 20], [1, 1, 4, 4]])
    scores = torch.tensor([0.9, 0.9, 0.5])
    labels = torch.tensor([0, 1, 1])
    perm = torch.tensor([2, 0, 1])
    same = detection_set_difference([boxes, scores, labels], [boxes[perm], scores[perm], labels[perm]], 64)
    assert same == {"boxes": 0.0, "scores": 0.0}
    moved = boxes.clone()
    moved[1, 2] += 0.5
    assert detection_set_difference([boxes, scores, labels], [moved, scores, labels], 64)["boxes"] == 0.5
    relabelled = torch.tensor([0, 0, 1])
    # The relabelled box can only be matched to a box of its new label, 16 px away.
    assert detection_set_difference([boxes, scores, labels], [boxes, scores, relabelled], 64)["boxes"] == 16.0
    assert detection_set_difference([boxes, scores, labels], [boxes[:2], scores[:2], labels[:2]], 64)[
        "scores"
    ] == float("inf")


@pytest.fixture(scope="module")
def detector_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """fasterrcnn_shapes (torchvision Faster R-CNN MobileNetV3-FPN from scratch) after two training steps at 64 px."""
    from litvision.data.fixtures import fixture_maker
    from litvision.train import train

    tmp = tmp_path_factory.mktemp("det")
    overrides = fixture_maker("shapes_coco")(tmp / "data")
    cfg = compose_cfg(
        [
            "experiment=fasterrcnn_shapes",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1",
            "test=false",
            "logger=csv",
            "model.net.min_size=64",
            "model.net.max_size=64",
            *overrides,
        ],
        tmp / "runs",
    )
    return train(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_torchvision_detector_export_matches_the_checkpoint(
    detector_run: dict, tmp_path: Path, fmt: str
) -> None:
    """Catches labels left in torchvision's 1..C, an untrained export, or a parity check that passes anything."""
    from litvision.tasks.detection import DetectionTask

    record = export_checkpoint(Path(detector_run["run_dir"]), fmt, tmp_path)
    written = json.loads((tmp_path / "export.json").read_text())
    assert written["parity_passed"] and written["task"] == "detection"
    assert written["outputs"] == {"boxes": ["K", 4], "scores": ["K"], "labels": ["K"]}
    (h, w) = written["input"]["shape"][1:]

    task = DetectionTask.load_from_checkpoint(detector_run["best_checkpoint"], map_location="cpu").eval()
    image = torch.rand(3, h, w, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = task([image])[0]
    if fmt == "onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(record["file"], providers=["CPUExecutionProvider"])
        got = [torch.from_numpy(o) for o in sess.run(None, {"image": image.numpy()})]
    else:
        with torch.no_grad():
            got = list(torch.jit.load(record["file"])(image))
    assert len(got[0]) > 0
    expected = [ref["boxes"], ref["scores"], ref["labels"]]
    assert int(expected[2].min()) >= 0 and int(got[2].min()) >= 0  # litvision's labels, not torchvision's
    diff = detection_set_difference(got, expected, max(h, w))
    assert diff["boxes"] <= 1e-5 * max(h, w) and diff["scores"] <= 1e-4, diff


@pytest.mark.slow
def test_detector_exported_program_is_refused_in_one_line(
    detector_run: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Catches a graph dump or stack trace instead of one line, or a leftover empty output folder."""
    out = tmp_path / "ep"
    with pytest.raises(UserError, match="torch.export cannot export fasterrcnn_mobilenet_v3_large_fpn"):
        export_checkpoint(Path(detector_run["run_dir"]), "exported_program", out)
    assert not out.exists()
    err = _one_line_error(
        capsys, [detector_run["run_dir"], "--format", "exported_program", "--out-dir", str(out)]
    )
    assert "use --format onnx or --format torchscript" in err


def _checkpoint_of(cfg_overrides: list[str], runs: Path, path: Path, noise: float) -> Path:
    """A checkpoint as litvision writes one (hyper-parameters and weights), of an untrained task
    whose weights are perturbed so that its scores spread out like a trained model's."""
    from omegaconf import OmegaConf

    from litvision.build import build_task

    cfg = compose_cfg(cfg_overrides, runs)
    OmegaConf.resolve(cfg)
    torch.manual_seed(0)
    task = build_task(cfg)
    with torch.no_grad():
        for p in task.parameters():
            p.add_(torch.randn_like(p) * noise)
    hp = {**dict(task.hparams), "class_names": task.class_names}
    torch.save({"hyper_parameters": hp, "state_dict": task.state_dict()}, path)
    return path


@pytest.mark.slow
def test_an_export_that_only_fits_its_example_image_is_caught(
    runs_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """SSDlite through the TorchScript-based ONNX exporter keeps values traced from the example image:
    right on that image, wrong on the next. Catches a parity check run on the example image alone."""
    ckpt = _checkpoint_of(
        [
            "experiment=ssdlite_voc",
            "model.net.weights_backbone=null",
            "model.net.min_size=128",
            "data.num_classes=3",
        ],
        runs_dir,
        tmp_path / "ssdlite.ckpt",
        noise=0.3,
    )
    out = tmp_path / "onnx"
    err = _one_line_error(
        capsys, [str(ckpt), "--format", "onnx", "--image-size", "128", "--out-dir", str(out)]
    )
    assert "differs from the PyTorch model" in err
    written = json.loads((out / "export.json").read_text())
    first, second = written["checks"]
    assert first["passed"] and not second["passed"] and not written["parity_passed"]
