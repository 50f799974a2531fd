"""Results files carry the dataset's own category ids, and COCO tools score them as litvision does.

A COCO dataset whose three categories have the gapped ids 1, 17 and 90 (true COCO instances
JSON, small generated PNGs), a detector trained for a few steps on it, then `predict`: the
`detections.json` it writes must use those ids, so that pycocotools' COCOeval, given the dataset's
own annotation file, finds the same mAP as litvision's evaluator (torchmetrics'
MeanAveragePrecision on the model's predictions in label space).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_cfg

# Contiguous label -> the dataset's category id: the gaps are what a 0-based or 1..C writer gets wrong.
GAPPED = {0: 1, 1: 17, 2: 90}
NAMES = {1: "circle", 17: "square", 90: "triangle"}
SIZE = 64


def write_gapped_coco(root: Path, counts: dict[str, int], seed: int = 0) -> None:
    """`root/annotations/instances_<split>.json` + `root/<split>/<id>.png`, COCO 2017's layout."""
    from PIL import Image

    from litvision.data.datasets.shapes import make_image

    rng = np.random.default_rng(seed)
    (root / "annotations").mkdir(parents=True)
    image_id, ann_id = 0, 0
    for split, count in counts.items():
        (root / split).mkdir()
        data: dict = {
            "images": [],
            "annotations": [],
            "categories": [{"id": c, "name": n, "supercategory": "shape"} for c, n in NAMES.items()],
        }
        for _ in range(count):
            image_id += 1
            # Large objects: an untrained detector's many boxes overlap some of them, so mAP is not 0.
            pixels, objects = make_image(rng, SIZE, max_objects=2, min_side=0.45, max_side=0.8)
            name = f"{image_id:012d}.png"  # PNG: every decoder gives the same pixels
            Image.fromarray(pixels).save(root / split / name)
            data["images"].append({"id": image_id, "file_name": name, "width": SIZE, "height": SIZE})
            for label, (x1, y1, x2, y2) in objects:
                ann_id += 1
                w, h = x2 - x1, y2 - y1
                data["annotations"].append(
                    {
                        "id": ann_id,
                        "image_id": image_id,
                        "category_id": GAPPED[label],
                        "bbox": [x1, y1, w, h],
                        "area": w * h,
                        "iscrowd": 0,
                    }
                )
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))


def data_overrides(root: Path) -> list[str]:
    return [
        "data=coco",
        f"data.root={root}",
        "data.splits={train: train, val: val, test: test}",
        "data.num_classes=3",
        f"data.image_size={SIZE}",
        "data.num_workers=0",
        "data.batch_size=4",
    ]


@pytest.fixture(scope="module")
def gapped_run(tmp_path_factory) -> tuple[Path, Path]:
    """(a checkpoint trained on the gapped COCO data, the data's root)."""
    from litvision.train import train

    tmp = tmp_path_factory.mktemp("gapped")
    root = tmp / "coco"
    write_gapped_coco(root, {"train": 8, "val": 4, "test": 6})
    cfg = compose_cfg(
        [
            "experiment=fasterrcnn_shapes",
            *data_overrides(root),
            "debug=limit",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1",
            "test=false",
            f"model.net.min_size={SIZE}",
            f"model.net.max_size={SIZE}",
            # Keep every box: an untrained model scores low, and the comparison needs detections.
            "model.net.score_thresh=0.0",
        ],
        tmp / "runs",
    )
    summary = train(cfg)
    return Path(summary["best_checkpoint"]), root


def _litvision_map(ckpt: Path, root: Path) -> dict[str, float]:
    """litvision's evaluator on the checkpoint's predictions for the test split, in label space."""
    import torch

    from litvision.data.datasets.coco import COCODetection
    from litvision.data.pipeline.decode import read_rgb
    from litvision.metrics.detection import make_map_metric, metric_targets
    from litvision.tasks.restore import load_task
    from litvision.utils.safe_load import load_checkpoint

    ckpt_data = load_checkpoint(ckpt)
    task, kind = load_task(ckpt_data, ckpt, compose_cfg(["experiment=fasterrcnn_shapes"], root / "unused"))
    assert kind == "detection"
    ds = COCODetection(root / "test", root / "annotations" / "instances_test.json")
    metric = make_map_metric(class_metrics=False)
    with torch.inference_mode():
        for i in range(len(ds)):
            _, path, _ = ds.image_info(i)
            (pred,) = task([read_rgb(path).float() / 255.0])
            boxes, labels, iscrowd = ds.annotation(i)
            target = {"boxes": boxes, "labels": labels, "iscrowd": iscrowd}
            target["area"] = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            metric.update([pred], metric_targets([target]))
    res = metric.compute()
    return {"map": float(res["map"]), "map_50": float(res["map_50"])}


def _cocoeval_map(results: list[dict], ann_file: Path) -> dict[str, float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        gt = COCO(str(ann_file))
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"map": float(ev.stats[0]), "map_50": float(ev.stats[1])}


@pytest.mark.slow  # trains a detector (~30 s with the predict runs on 2 loaded cores)
def test_detections_json_carries_gapped_ids_and_scores_as_litvision(gapped_run, tmp_path: Path) -> None:
    """Catches: detections.json written with contiguous labels (0..2) or 1..C instead of the
    dataset's ids 1, 17, 90, and ids lost between training and predict (not in the checkpoint)."""
    from litvision.commands.predict import run_predict

    ckpt, root = gapped_run
    cfg = compose_cfg(
        [
            # No data overrides: the ids come from the checkpoint, not from a dataset at hand (the
            # experiment's own data, the generated shapes, numbers its classes 1, 2, 3).
            "experiment=fasterrcnn_shapes",
            f"ckpt_path={ckpt}",
            f"input={root / 'test'}",
            "score_thresh=0.0",
            # One image per forward pass, as the evaluator below: batched convolutions round
            # differently, and an untrained model's near-tied scores then reorder.
            "batch_size=1",
        ],
        tmp_path / "runs",
        config_name="predict",
    )
    summary = run_predict(cfg, tmp_path / "run")
    results = json.loads((tmp_path / "run" / "detections.json").read_text())
    assert summary["detections"] == len(results) > 0
    assert {r["category_id"] for r in results} == set(NAMES)
    assert summary["categories"] == [{"id": c, "name": n} for c, n in NAMES.items()]
    # File stems are COCO's image ids, so the results line up with the dataset's own file.
    images = json.loads((root / "annotations" / "instances_test.json").read_text())["images"]
    assert {r["image_id"] for r in results} <= {im["id"] for im in images}

    ours = _litvision_map(ckpt, root)
    theirs = _cocoeval_map(results, root / "annotations" / "instances_test.json")
    assert ours["map_50"] > 0, "the comparison needs some true positives"
    assert theirs == pytest.approx(ours, abs=1e-6)


def test_datasets_without_ids_get_one_to_c(tmp_path: Path) -> None:
    """Catches: VOC and YOLO data writing 0-based labels as category ids (the ids the project's
    own COCO files of the same classes, yolo2coco and the shapes, do not have)."""
    from litvision.data.datasets.voc import VOCDataModule
    from litvision.data.datasets.yolo import YOLODataModule
    from litvision.data.fixtures import fixture_maker

    voc_root = tmp_path / "voc"
    fixture_maker("voc")(voc_root)
    voc = VOCDataModule(root=voc_root, year="2007")
    assert voc.category_ids == list(range(1, 21))
    yolo = YOLODataModule(root=tmp_path, class_names=["a", "b", "c"])
    assert yolo.category_ids == [1, 2, 3]


@pytest.mark.slow  # trains a detector (~30 s with the predict runs on 2 loaded cores)
def test_no_detection_above_the_threshold_says_which_key_to_lower(gapped_run, tmp_path: Path, capsys) -> None:
    """Catches: a bare "0 detections" with nothing on the threshold that removed every box, or a
    suggested value that still keeps nothing."""
    from litvision.commands.predict import run_predict

    ckpt, root = gapped_run
    cfg = compose_cfg(
        ["experiment=fasterrcnn_shapes", f"ckpt_path={ckpt}", f"input={root / 'test'}"]
        + ["score_thresh=1.0"],
        tmp_path / "runs",
        config_name="predict",
    )
    summary = run_predict(cfg, tmp_path / "run")
    out = capsys.readouterr().out
    assert summary["detections"] == 0 and summary["score_thresh"] == 1.0
    assert "0 detections scoring >= score_thresh=1 in 6 images" in out
    best = summary["best_score"]
    assert 0 < best < 1.0 and f"the best box scored {best:.3f}" in out
    suggested = 0.05 if best >= 0.05 else float(f"{best:.3f}")
    assert f"lower it with score_thresh={suggested:g}" in out and suggested <= best
    assert json.loads((tmp_path / "run" / "detections.json").read_text()) == []


def test_no_detections_line_for_every_case() -> None:
    """Catches: suggesting a threshold above the best box, or blaming the threshold when the model
    returned no boxes at all."""
    from litvision.commands.predict import no_detections_line

    assert "lower it with score_thresh=0.05 " in no_detections_line(0.3, 0.2)
    assert "lower it with score_thresh=0.012 " in no_detections_line(0.3, 0.0123)
    line = no_detections_line(0.3, None)
    assert "no boxes at all" in line and "lower it" not in line
