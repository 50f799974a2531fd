"""FCOS on a timm backbone: assignment rules, a real training run through DetectionTask (EMA and
named parameter groups on), its mAP checked against pycocotools, and ONNX export with parity."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import compose_cfg

from litvision.errors import UserError
from litvision.models.detection.fcos import TimmFCOS


def _tiny(**kw) -> TimmFCOS:
    return TimmFCOS(**{"num_classes": 3, "backbone": "resnet18", "fpn_channels": 16, "head_convs": 1, **kw})


def test_assignment_follows_fcos_rules() -> None:
    """A location is positive inside the centre region and the level's size range; the smaller box
    wins a location two boxes claim.
    Catches: centre sampling dropped (a corner location of a box becomes positive), and the size
    range compared with the wrong bound (a 40 px box assigned to the stride-16 level)."""
    model = _tiny()
    maps = [torch.zeros(1, 1, 128 // s, 128 // s) for s in model.strides]
    points, strides, levels = model.locations(maps)
    boxes = torch.tensor([[8.0, 8, 48, 48], [20.0, 20, 36, 36]])
    matched, _ = model.assign(boxes, torch.tensor([0, 1]), points, strides, levels)
    pos = matched >= 0
    # Both boxes reach at most 40 px < 64: only the stride-8 level (FCOS' range 0-64) holds positives.
    assert set(levels[pos].tolist()) == {0}
    # Centre region of the large box: within 1.5 * 8 px of (28, 28); its corner (12, 12) is outside.
    corner = ((points - torch.tensor([12.0, 12.0])).abs().sum(-1) == 0).nonzero().item()
    assert matched[corner] == -1
    centre = ((points - torch.tensor([28.0, 28.0])).abs().sum(-1) == 0).nonzero().item()
    assert matched[centre] == 1  # (28, 28) is in both: the smaller box (index 1) takes it
    assert int((matched == 0).sum()) > 0


def test_loss_goes_down_and_boxes_come_back_in_input_pixels() -> None:
    """Catches: boxes left in the resized network input (image_size=64 while the images are 96x128),
    and a loss that does not train the box branch."""
    torch.manual_seed(0)
    model = _tiny(image_size=64).train()
    images = [torch.rand(3, 96, 128), torch.rand(3, 128, 96)]
    targets = [
        {"boxes": torch.tensor([[10.0, 10, 70, 80]]), "labels": torch.tensor([2])},
        {"boxes": torch.tensor([[5.0, 5, 60, 60]]), "labels": torch.tensor([0])},
    ]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(15):
        losses = model(images, targets)
        assert set(losses) == {"loss_cls", "loss_box", "loss_ctr"}
        loss = sum(losses.values())
        first = first if first is not None else {k: v.item() for k, v in losses.items()}
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses["loss_box"].item() < 0.5 * first["loss_box"], (first, losses)
    model.eval()
    with torch.no_grad():
        out = model(images)
    best = out[0]["boxes"][out[0]["scores"].argmax()]
    torch.testing.assert_close(best, torch.tensor([10.0, 10, 70, 80]), atol=8.0, rtol=0)
    assert out[0]["boxes"][:, 2].max() <= 128 and out[1]["boxes"][:, 3].max() <= 128


def test_bad_backbone_and_levels_are_user_errors() -> None:
    with pytest.raises(UserError, match="backbone"):
        _tiny(backbone="resnet_nonexistent")
    with pytest.raises(UserError, match="size_ranges"):
        _tiny(size_ranges=[0, 64, 1e9])


def test_pretrained_file_loads_through_the_one_loader(tmp_path: Path) -> None:
    """Catches: a backbone file ignored, or the source's classifier counted as missing weights."""
    import timm
    from safetensors.torch import save_file

    source = timm.create_model("resnet18", num_classes=1000)
    path = tmp_path / "resnet18.safetensors"
    save_file(source.state_dict(), str(path))
    model = _tiny(pretrained_file=str(path))
    report = model.load_report
    assert report is not None and report.missing == []
    assert sorted(report.unexpected) == ["fc.bias", "fc.weight"]
    torch.testing.assert_close(model.backbone.conv1.weight, source.conv1.weight)


@pytest.fixture(scope="module")
def fcos_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """det_small_shapes, shrunk: 2 epochs on the 64 px shapes fixture, EMA and parameter groups on."""
    from litvision.data.fixtures import fixture_maker
    from litvision.train import train

    tmp = tmp_path_factory.mktemp("fcos")
    cfg = compose_cfg(
        [
            "experiment=det_small_shapes",
            *fixture_maker("shapes_voc")(tmp / "data"),
            "data.image_size=64",
            # The fixture's 64 px as they come (the recipe resizes to 96 inside the model).
            "model.net.image_size=null",
            "data.batch_size=4",
            # The batch-level options have tests of their own (test_detection_augment.py).
            "data.augment.multi_scale=null",
            "data.augment.mosaic=0",
            "trainer.max_epochs=6",
            "model.optimizer.lr=5e-3",
            "trainer.log_every_n_steps=1",
            "logger=csv",
            "callbacks.rich_progress_bar=null",
            "model.net.fpn_channels=16",
            "model.net.head_convs=1",
            # Every candidate counts: a barely trained model still gets a non-zero, checkable mAP.
            "model.net.score_thresh=0.0",
            "model.ema_decay=0.9",
            "+model.param_groups={backbone: {prefixes: [backbone], lr_scale: 0.5}}",
        ],
        tmp / "runs",
    )
    return {**train(cfg), "cfg": cfg}


def test_trains_through_the_detection_task(fcos_run: dict) -> None:
    """The named losses are logged and the backbone's parameter group has its own LR column."""
    import pandas as pd

    metrics = pd.read_csv(next(Path(fcos_run["run_dir"]).rglob("metrics.csv")))
    assert {"train/loss_cls", "train/loss_box", "train/loss_ctr"} <= set(metrics.columns)
    assert any(c.startswith("lr-") and "backbone" in c for c in metrics.columns), list(metrics.columns)
    assert Path(fcos_run["best_checkpoint"]).is_file()
    assert {"test/map", "test/map_50", "test/ap/circle"} <= set(fcos_run["test"])


def test_map_equals_pycocotools_on_the_same_predictions(fcos_run: dict) -> None:
    """The test mAP the run logged, recomputed by pycocotools from the checkpoint's own predictions.
    Catches: the task's metric fed targets shifted by 2 px, and the test metric updated with the
    validation metric's state."""
    from test_detection_map import pycocotools_stats

    from litvision.build import build_datamodule
    from litvision.tasks.detection import DetectionTask

    task = DetectionTask.load_from_checkpoint(fcos_run["best_checkpoint"], map_location="cpu").eval()
    dm = build_datamodule(fcos_run["cfg"])
    dm.setup("test")
    targets, preds = [], []
    for image, target in dm.datasets["test"]:
        with torch.no_grad():
            preds.append(task([image])[0])
        targets.append({**target, "boxes": target["boxes"].as_subclass(torch.Tensor)})
    ref = pycocotools_stats(targets, preds, 3)
    assert ref[1] > 0, "a checkable, non-zero mAP@0.5"
    assert fcos_run["test"]["test/map"] == pytest.approx(ref[0], abs=1e-4)
    assert fcos_run["test"]["test/map_50"] == pytest.approx(ref[1], abs=1e-4)


@pytest.mark.parametrize("side", [64, 96])
def test_onnx_export_matches_in_pixels(fcos_run: dict, tmp_path: Path, side: int) -> None:
    """Export at two sizes; boxes in pixels agree with PyTorch within 1e-4.
    Catches: exported boxes 1e-3 px off (beyond the 1e-4 bound), and labels shifted by one."""
    import onnxruntime as ort

    from litvision.deploy.export import export_checkpoint
    from litvision.deploy.parity import detection_set_difference
    from litvision.tasks.detection import DetectionTask

    record = export_checkpoint(Path(fcos_run["best_checkpoint"]), "onnx", tmp_path, image_size=side)
    assert record["parity_passed"]
    task = DetectionTask.load_from_checkpoint(fcos_run["best_checkpoint"], map_location="cpu").eval()
    sess = ort.InferenceSession(record["file"], providers=["CPUExecutionProvider"])
    for seed in (1, 2):
        image = torch.rand(3, side, side, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            ref = task([image])[0]
        got = [torch.from_numpy(o) for o in sess.run(None, {"image": image.numpy()})]
        assert len(got[0]) > 0
        diff = detection_set_difference(got, [ref["boxes"], ref["scores"], ref["labels"]], side)
        assert diff["boxes"] <= 1e-4 and diff["scores"] <= 1e-4, diff
