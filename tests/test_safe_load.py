"""The one safe checkpoint loader: plain checkpoints, one-line refusals, payloads never run,
and a checkpoint used with another experiment or task refused in one line naming both."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import compose_cfg

from litvision.errors import UserError
from litvision.utils.safe_load import PROJECT_GLOBALS, check_compatible, load_checkpoint


class Payload:
    """Unpickling this runs a shell command that creates `marker` (what a malicious .ckpt does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_payload_checkpoint(path: Path, marker: Path) -> Path:
    """A Lightning-shaped checkpoint whose pickle creates `marker` when loaded with weights_only=False."""
    torch.save(
        {
            "state_dict": {"net.head.1.weight": torch.zeros(10, 32)},
            "hyper_parameters": {"num_classes": 10, "callback": Payload(marker)},
        },
        path,
    )
    return path


def assert_one_line(err: pytest.ExceptionInfo, *parts: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg, msg
    for part in parts:
        assert part in msg, msg


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """digits_cnn for one short epoch with `model.freeze=[head]`: an OmegaConf ListConfig argument,
    which used to end up in the checkpoint and break testing the best checkpoint."""
    from litvision.train import train

    runs = tmp_path_factory.mktemp("safe_load") / "runs"
    cfg = compose_cfg(
        ["experiment=digits_cnn", "debug=limit", "trainer.max_epochs=1", "model.freeze=[head]"], runs
    )
    return train(cfg)


def test_checkpoints_are_plain_and_say_where_they_came_from(trained: dict) -> None:
    """Catches: a task saving OmegaConf objects (drop `plain()` from the tasks' __init__: the test
    stage's weights-only load of the best checkpoint fails), or no provenance record."""
    assert trained["test"]["test/acc"] >= 0.0  # the best checkpoint loaded for testing
    for name in ("best_checkpoint", "last_checkpoint"):
        ckpt = load_checkpoint(trained[name])
        # torch's own weights-only loader reads it too: nothing beyond plain types is needed.
        torch.load(trained[name], weights_only=True)
        assert ckpt["hyper_parameters"]["freeze"] == ["head"]
        assert type(ckpt["hyper_parameters"]["freeze"]) is list
        record = ckpt["litvision"]
        assert {k: record[k] for k in ("experiment", "task", "num_classes", "net", "datamodule")} == {
            "experiment": "digits_cnn",
            "task": "classification",
            "num_classes": 10,
            "net": "litvision.models.classification.cnn.SmallCNN",
            "datamodule": "litvision.data.datasets.digits.DigitsDataModule",
        }
        # What predict, test and export read instead of guessing (model, weights, data, preprocessing).
        assert {"model", "weights", "dataset", "preprocessing"} <= set(record)
        assert record["dataset"]["channels"] == 1 and record["preprocessing"]["mean"]


def _truncated(tmp_path: Path, trained: dict) -> Path:
    data = Path(trained["last_checkpoint"]).read_bytes()
    return _write(tmp_path / "truncated.ckpt", data[: len(data) // 2])


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _tensor_file(tmp_path: Path, trained: dict) -> Path:
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    return tmp_path / "tensor.pt"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda tmp, tr: tmp / "missing.ckpt", "Checkpoint not found"),
        (lambda tmp, tr: tmp, "is a folder, not a file"),
        (lambda tmp, tr: _write(tmp / "empty.ckpt", b""), "not a readable PyTorch checkpoint"),
        (
            lambda tmp, tr: _write(tmp / "text.ckpt", b"hello, not a checkpoint\n"),
            "not a readable PyTorch checkpoint",
        ),
        (_truncated, "not a readable PyTorch checkpoint (truncated or corrupt"),
        (_tensor_file, "holds a Tensor, not a checkpoint"),
    ],
    ids=["missing", "folder", "empty", "text", "truncated", "not-a-dict"],
)
def test_bad_files_are_one_line(make, expected: str, tmp_path: Path, trained: dict) -> None:
    """Catches: any torch.load failure escaping as a traceback (e.g. remove the except clauses)."""
    path = make(tmp_path, trained)
    with pytest.raises(UserError) as err:
        load_checkpoint(path)
    assert_one_line(err, expected, str(path))


def test_payload_is_refused_everywhere_and_never_runs(tmp_path: Path) -> None:
    """Catches: weights_only=False (or allow-listing os.system) in load_checkpoint or in the weights
    loaders: the marker file appears."""
    marker = tmp_path / "pwned"
    ckpt = write_payload_checkpoint(tmp_path / "payload.ckpt", marker)
    # The payload is live: an unsafe load runs it.
    torch.load(ckpt, weights_only=False)
    assert marker.exists()
    marker.unlink()

    with pytest.raises(UserError) as err:
        load_checkpoint(ckpt)
    assert_one_line(err, str(ckpt), "refuses to execute code", "system")

    # model.net.weights=<payload> (classification's weights loader)
    from litvision.models.weights import build_net

    net_cfg = {
        "_target_": "litvision.models.classification.cnn.SmallCNN",
        "in_channels": 1,
        "num_classes": 10,
    }
    with pytest.raises(UserError) as err:
        build_net({**net_cfg, "weights": str(ckpt)})
    assert_one_line(err, str(ckpt), "refuses to execute code")

    # model.net.weights / weights_backbone=<payload> (a detector's weights file, the same one loader)
    from litvision.models.detection.torchvision_detectors import torchvision_detector

    with pytest.raises(UserError) as err:
        torchvision_detector(
            "fasterrcnn_mobilenet_v3_large_fpn", num_classes=2, weights_backbone=None, weights=str(ckpt)
        )
    assert_one_line(err, str(ckpt), "refuses to execute code")

    # model.net.pretrained_file=<payload> (timm models)
    from litvision.models.classification.timm_models import timm_model

    with pytest.raises(UserError) as err:
        timm_model("resnet10t", num_classes=3, pretrained_file=str(ckpt))
    assert_one_line(err, str(ckpt), "refuses to execute code")
    assert not marker.exists()


def test_timm_pretrained_file_loads_through_the_safe_loader(tmp_path: Path) -> None:
    """Catches: the timm path losing the weights (all but the new head must load, wrapped the
    way trainers save them: under state_dict, with DDP's module. prefix)."""
    from litvision.models.classification.timm_models import timm_model

    source = timm_model("resnet10t", num_classes=3)
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    loaded = timm_model("resnet10t", num_classes=3, pretrained_file=str(path)).state_dict()
    differ = [k for k, v in source.state_dict().items() if not torch.equal(v, loaded[k])]
    assert differ == ["fc.weight", "fc.bias"]  # timm re-initialises the head for the new task


def test_project_types_are_allow_listed(tmp_path: Path) -> None:
    """Catches: an empty PROJECT_GLOBALS (a DataModule built with root=Path(...) records a Path in
    every checkpoint, which torch's weights-only loader refuses by default)."""
    path = tmp_path / "with_path.ckpt"
    root = Path(tmp_path / "data")
    torch.save({"state_dict": {}, "datamodule_hyper_parameters": {"root": root}}, path)
    with pytest.raises(Exception, match="PosixPath"):
        torch.load(path, weights_only=True)
    assert load_checkpoint(path)["datamodule_hyper_parameters"]["root"] == root
    assert type(root) in PROJECT_GLOBALS
    # Lightning's own loads use torch's global allow-list: allow_project_types extends it (in a
    # separate process, so that this process's allow-list stays torch's default).
    code = (
        "import sys, torch; from litvision.utils.safe_load import allow_project_types; "
        "allow_project_types(); print(torch.load(sys.argv[1], weights_only=True)['datamodule_hyper_parameters'])"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert str(root) in out.stdout


def test_check_compatible_names_both(trained: dict, tmp_path: Path) -> None:
    """Catches: check_compatible comparing nothing (or only one of experiment/task/net/classes)."""
    path = Path(trained["best_checkpoint"])
    ckpt = load_checkpoint(path)
    runs = tmp_path / "runs"
    check_compatible(ckpt, compose_cfg(["experiment=digits_cnn"], runs), path)  # its own: fine

    with pytest.raises(UserError) as err:
        check_compatible(ckpt, compose_cfg(["experiment=lenet_mnist"], runs), path)
    assert_one_line(
        err, str(path), "experiment 'digits_cnn'", "experiment 'lenet_mnist'", "experiment=digits_cnn"
    )

    with pytest.raises(UserError) as err:
        check_compatible(ckpt, compose_cfg(["experiment=yolov1_shapes"], runs), path)
    assert_one_line(err, "'digits_cnn' (classification task", "'yolov1_shapes' (detection task", "task")

    with pytest.raises(UserError) as err:
        check_compatible(
            ckpt,
            compose_cfg(["experiment=digits_cnn", "+data.classes=[0,1,2]", "data.num_classes=3"], runs),
            path,
        )
    assert_one_line(err, "10 classes", "3 classes", "num_classes")

    # A checkpoint written before the record existed: its hyper-parameters still tell task, net, classes.
    old = {k: v for k, v in ckpt.items() if k != "litvision"}
    check_compatible(old, compose_cfg(["experiment=digits_cnn"], runs), path)
    with pytest.raises(UserError) as err:
        check_compatible(old, compose_cfg(["experiment=yolov1_shapes"], runs), path)
    assert_one_line(err, "(classification task, SmallCNN", "(detection task, YOLOv1")


def test_a_checkpoint_without_the_record_tells_its_task_by_its_network() -> None:
    """Checkpoints written before the `litvision` record and without a task hyper-parameter that tells
    (label_smoothing, class_metrics): the network's package decides, else the experiment's task, else
    one line. Catches the detection package rule dropped (a YOLO read as a classifier) and the
    classification rule dropped (the experiment's task then decides, wrongly for a foreign config)."""
    from omegaconf import OmegaConf

    from litvision.tasks.restore import task_kind
    from litvision.utils.safe_load import checkpoint_record

    def old(target: str) -> dict:
        return {"hyper_parameters": {"net": {"_target_": target}, "num_classes": 3}}

    yolo, cnn = (
        old("litvision.models.detection.yolo.YOLOv1"),
        old("litvision.models.classification.cnn.SmallCNN"),
    )
    assert (
        checkpoint_record(yolo)["task"] == "detection" and checkpoint_record(cnn)["task"] == "classification"
    )
    detector_cfg = OmegaConf.create({"model": {"_target_": "litvision.tasks.detection.DetectionTask"}})
    assert task_kind(cnn, Path("old.ckpt"), detector_cfg) == "classification"  # the checkpoint wins
    foreign = old("torchvision.models.resnet18")
    assert checkpoint_record(foreign)["task"] is None
    assert task_kind(foreign, Path("old.ckpt"), detector_cfg) == "detection"  # then the experiment
    with pytest.raises(UserError, match="Cannot tell whether checkpoint old.ckpt is a classification"):
        task_kind(foreign, Path("old.ckpt"))
