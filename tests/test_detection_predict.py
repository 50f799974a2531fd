"""`litvision.predict` on a folder: annotated images + a valid COCO results JSON; bad input rejected first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import compose_cfg, run_cli, run_folders

from litvision.data.fixtures import fixture_maker

EXP = "fasterrcnn_shapes"  # COCO-format shapes: category ids 1..3, mapped back from labels 0..2


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """A real checkpoint from one short training step, and the shapes data it came from."""
    from litvision.train import train

    tmp = tmp_path_factory.mktemp("predict")
    overrides = fixture_maker("shapes_coco")(tmp / "data")
    cfg = compose_cfg(
        [
            f"experiment={EXP}",
            "debug=limit",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=1",
            "trainer.limit_val_batches=1",
            "test=false",
            "model.net.min_size=64",
            "model.net.max_size=64",
            # An untrained model scores low: keep every box so the JSON has detections to check.
            "model.net.score_thresh=0.0",
            *overrides,
        ],
        tmp / "runs",
    )
    summary = train(cfg)
    ckpt = Path(summary["best_checkpoint"])
    assert ckpt.is_file()
    images = tmp / "data" / "shapes" / "coco" / "test"
    assert any(images.glob("*.jpg"))
    return ckpt, images, overrides


def test_predict_writes_images_and_coco_json(trained, tmp_path: Path) -> None:
    ckpt, images, _ = trained
    runs = tmp_path / "runs"
    proc = run_cli(
        "litvision.predict",
        f"experiment={EXP}",
        f"ckpt_path={ckpt}",
        f"input={images}",
        f"paths.runs_dir={runs}",
        "score_thresh=0.0",
        check=True,
    )
    (run,) = [f for f in run_folders(runs) if f.name != ".hydra"]  # .hydra/config.yaml is not a run
    assert run.parent.name == "predict" and str(run) in proc.stdout
    names = sorted(p.stem for p in images.glob("*.jpg"))
    assert sorted(p.stem for p in (run / "images").glob("*.png")) == names

    results = json.loads((run / "detections.json").read_text())
    id_map = {d["id"]: d["file_name"] for d in json.loads((run / "images.json").read_text())}
    assert sorted(Path(f).stem for f in id_map.values()) == names
    assert results, "score_thresh=0 keeps the model's detections"
    for r in results:
        assert set(r) == {"image_id", "category_id", "bbox", "score"}
        assert r["image_id"] in id_map
        assert r["category_id"] in (1, 2, 3)  # COCO ids, not contiguous labels
        x, y, w, h = r["bbox"]
        assert w >= 0 and h >= 0 and 0 <= r["score"] <= 1

    # The results load into pycocotools against the dataset's own annotations.
    from pycocotools.coco import COCO

    ann = images.parent / "annotations" / "instances_test.json"
    gt = COCO(str(ann))
    by_name = {im["file_name"]: im["id"] for im in gt.dataset["images"]}
    remapped = [{**r, "image_id": by_name[Path(id_map[r["image_id"]]).name]} for r in results]
    assert len(gt.loadRes(remapped).anns) == len(results)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["images"] == len(names) and summary["detections"] == len(results)


def test_predict_bad_input_fails_before_writing(trained, tmp_path: Path) -> None:
    ckpt, images, _ = trained
    runs = tmp_path / "runs"
    cases = [
        ([f"ckpt_path={tmp_path / 'nope.ckpt'}", f"input={images}"], "Checkpoint not found"),
        ([f"ckpt_path={ckpt}", f"input={tmp_path / 'no_such_folder'}"], "is not a folder"),
        ([f"ckpt_path={ckpt}", f"input={tmp_path}"], "holds no images"),
        ([f"input={images}"], "needs a checkpoint"),
        (
            [f"ckpt_path={ckpt}", f"input={images}", "agnostic_nms=maybe"],
            "agnostic_nms='maybe' must be true or false",
        ),
    ]
    (tmp_path / "empty").mkdir()
    for args, message in cases:
        proc = run_cli("litvision.predict", f"experiment={EXP}", *args, f"paths.runs_dir={runs}")
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr
        assert "Traceback" not in proc.stderr
    assert not runs.exists() or not any(runs.rglob("*"))


def test_predict_agnostic_nms_keeps_one_box_per_object(trained, tmp_path: Path) -> None:
    """agnostic_nms=true: no two written boxes overlap by more than nms_thresh, whatever their
    classes; without it the untrained model puts boxes of several classes on one spot. The drawn
    images state the threshold in a strip above the (enlarged) image.
    Catches: the option ignored (per-class NMS only); agnostic NMS at another IoU than nms_thresh."""
    import torch
    from PIL import Image
    from torchvision.ops import box_convert, box_iou

    ckpt, images, _ = trained

    def predict(*extra: str) -> tuple[Path, list[dict]]:
        runs = tmp_path / f"runs{len(extra)}"
        run_cli(
            "litvision.predict",
            f"experiment={EXP}",
            f"ckpt_path={ckpt}",
            f"input={images}",
            f"paths.runs_dir={runs}",
            "score_thresh=0.0",
            "nms_thresh=0.3",
            *extra,
            check=True,
        )
        (run,) = [f for f in run_folders(runs) if f.name != ".hydra"]
        return run, json.loads((run / "detections.json").read_text())

    def worst_overlap(results: list[dict], across_classes: bool) -> float:
        worst = 0.0
        for image_id in {r["image_id"] for r in results}:
            mine = [r for r in results if r["image_id"] == image_id]
            boxes = box_convert(torch.tensor([r["bbox"] for r in mine]), "xywh", "xyxy")
            iou = box_iou(boxes, boxes).fill_diagonal_(0)
            if not across_classes:
                cats = torch.tensor([r["category_id"] for r in mine])
                iou[cats[:, None] == cats[None, :]] = 0
            worst = max(worst, float(iou.max()))
        return worst

    _, per_class = predict()
    run, agnostic = predict("agnostic_nms=true")
    assert worst_overlap(per_class, across_classes=True) > 0.3, "the fixture needs overlapping classes"
    assert 0 < len(agnostic) < len(per_class)
    assert worst_overlap(agnostic, across_classes=True) <= 0.3 + 1e-4
    first = sorted(images.glob("*.jpg"))[0]
    with Image.open(first) as src, Image.open(run / "images" / f"{first.stem}.png") as drawn:
        assert drawn.width >= 320 and drawn.width % src.width == 0
        assert drawn.height > drawn.width // src.width * src.height  # the caption strip
