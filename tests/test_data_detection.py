"""Detection data: VOC, COCO and YOLO readers on fixtures in their exact formats, transforms,
collates, converters, the shapes generator and the errors bad input gets."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from conftest import compose_cfg

from litvision.data import fixtures
from litvision.data.fixtures import detection as fx
from litvision.errors import UserError

VOC = {
    c: i
    for i, c in enumerate(__import__("litvision.data.datasets.voc", fromlist=["VOC_CLASSES"]).VOC_CLASSES)
}


def _boxes(target: dict) -> list[list[float]]:
    return target["boxes"].as_subclass(torch.Tensor).tolist()


def _close(actual: list, expected: list, atol: float = 1e-4) -> None:
    torch.testing.assert_close(
        torch.tensor(actual, dtype=torch.float64).reshape(-1, 4),
        torch.tensor(expected, dtype=torch.float64).reshape(-1, 4),
        atol=atol,
        rtol=0,
    )


def _datamodule(name: str, root: Path, runs_dir: Path, *extra: str):
    from litvision.build import build_datamodule

    overrides = fixtures.fixture_maker(name)(root)
    return build_datamodule(compose_cfg([f"data={name}", *overrides, *extra], runs_dir))


# ---------------------------------------------------------------- VOC


def test_voc_reader_boxes_labels_difficult_and_float_coords(tmp_path: Path) -> None:
    from litvision.data.datasets.voc import VOCDetection

    fx.write_voc(tmp_path)
    train = VOCDetection(tmp_path, "2007", "trainval", keep_difficult=False)
    test = VOCDetection(tmp_path, "2007", "test", keep_difficult=True)
    assert train.ids == ["000001", "000003", "000002", "000004"]
    image, target = train[0]
    assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 48, 64)
    # 1-based inclusive VOC pixels -> 0-based continuous XYXY: (xmin - 1, ymin - 1, xmax, ymax).
    assert _boxes(target) == [[4.0, 5.0, 30.0, 40.0]]  # the difficult dog is not a training target
    assert target["labels"].tolist() == [VOC["person"]]
    assert target["iscrowd"].tolist() == [0]
    assert target["boxes"].canvas_size == (48, 64) and target["boxes"].dtype == torch.float32
    assert target["area"].tolist() == [26.0 * 35.0]
    # Evaluation keeps it, flagged for the metric to ignore.
    _, target = test[0]
    assert _boxes(target) == [[4.0, 5.0, 30.0, 40.0], [9.0, 9.0, 20.0, 20.0]]
    assert target["labels"].tolist() == [VOC["person"], VOC["dog"]]
    assert target["iscrowd"].tolist() == [0, 1]
    _, empty = test[1]
    assert (
        empty["boxes"].shape == (0, 4)
        and empty["labels"].shape == (0,)
        and empty["labels"].dtype == torch.int64
    )
    _, trunc = test[2]  # float coordinates, truncated at the right/bottom border
    assert _boxes(trunc) == [[39.5, 19.0, 64.0, 48.0]] and trunc["labels"].tolist() == [VOC["car"]]
    _, two = test[3]  # xmin=1, ymin=1 touches the top-left corner: x1 = y1 = 0
    assert _boxes(two) == [[0.0, 0.0, 20.0, 30.0], [29.0, 29.0, 50.0, 52.0]]
    assert two["labels"].tolist() == [VOC["cat"], VOC["bird"]]
    assert [test[i][1]["image_id"] for i in range(4)] == [0, 1, 2, 3]


def test_voc_07_plus_12_concatenates_years(tmp_path: Path) -> None:
    import shutil

    from litvision.data.datasets.voc import VOCDataModule

    fx.write_voc(tmp_path)
    shutil.copytree(tmp_path / "VOCdevkit" / "VOC2007", tmp_path / "VOCdevkit" / "VOC2012")
    dm = VOCDataModule(tmp_path, year="07+12", num_classes=20, image_size=64)
    train = dm.raw_dataset("train")
    assert len(train) == 8 and len(dm.raw_dataset("test")) == 4
    assert [train[i][1]["image_id"] for i in range(8)] == list(range(8))
    assert _boxes(train[4][1]) == [[4.0, 5.0, 30.0, 40.0]]  # 2012's copy of 000001, difficult dropped


def test_voc_datamodule_batches(tmp_path: Path, runs_dir: Path) -> None:
    dm = _datamodule("voc", tmp_path / "voc", runs_dir)
    assert dm.num_classes == 20 and dm.class_names[:3] == ["aeroplane", "bicycle", "bird"]
    assert dm.class_names[-1] == "tvmonitor"
    dm.setup("fit")
    images, targets = next(iter(dm.train_dataloader()))
    assert len(images) == 2 and len(targets) == 2
    for image, target in zip(images, targets, strict=True):
        assert image.dtype == torch.float32 and tuple(image.shape) == (3, 64, 64)
        assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
        assert target["boxes"].canvas_size == (64, 64)
        assert target["labels"].dtype == torch.int64 and target["iscrowd"].dtype == torch.int64
        assert len(target["area"]) == len(target["boxes"]) == len(target["labels"])


def test_voc_num_classes_mismatch_is_a_user_error(tmp_path: Path) -> None:
    from litvision.data.datasets.voc import VOCDataModule

    with pytest.raises(UserError, match=r"data.num_classes=21 .* set data.num_classes=20"):
        VOCDataModule(tmp_path, year="2007", num_classes=21)


def test_voc_missing_dataset_says_what_to_do(tmp_path: Path) -> None:
    from litvision.data.datasets.voc import VOCDataModule

    dm = VOCDataModule(tmp_path / "nothing", year="2007")
    with pytest.raises(UserError, match=r"No VOC split file .*trainval.txt.*data.download=true"):
        dm.setup("fit")


def test_voc_download_offline_names_url_and_manual_command(tmp_path: Path, monkeypatch) -> None:
    import urllib.request

    from litvision.data.datasets.voc import VOCDataModule

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    dm = VOCDataModule(tmp_path, year="2007", download=True)
    with pytest.raises(
        UserError, match=r"VOCtrainval_06-Nov-2007.tar .*tar -xf .*md5 c52e279531787c972589f7e41ab4ae64"
    ):
        dm.prepare_data()


def test_coco_download_offline_and_bad_archive(tmp_path: Path, monkeypatch) -> None:
    import urllib.request

    from litvision.data.datasets.coco import COCODataModule

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    dm = COCODataModule(tmp_path, download=True)
    with pytest.raises(
        UserError, match=r"annotations_trainval2017.zip .*unzip -q .*md5 f4bbac642086de4f52a3fdda2de5fa2c"
    ):
        dm.prepare_data()
    (tmp_path / "annotations_trainval2017.zip").write_bytes(b"not the archive")
    with pytest.raises(UserError, match=r"annotations_trainval2017.zip does not match the md5 .* delete it"):
        dm.prepare_data()


# ---------------------------------------------------------------- VOC bad input


def _voc_with(tmp_path: Path, xml: str, size: tuple[int, int] = (64, 48)) -> Path:
    fx.write_voc(tmp_path)
    base = tmp_path / "VOCdevkit" / "VOC2007"
    (base / "Annotations" / "000003.xml").write_text(xml)
    return base / "Annotations" / "000003.xml"


def test_voc_malformed_xml_names_the_file(tmp_path: Path) -> None:
    from litvision.data.datasets.voc import VOCDetection

    bad = _voc_with(tmp_path, "<annotation><filename>000003.jpg</filename><object>")
    with pytest.raises(UserError, match=rf"{bad} is not valid XML"):
        VOCDetection(tmp_path, "2007", "train")


def test_voc_unknown_class_names_file_and_class(tmp_path: Path) -> None:
    from litvision.data.datasets.voc import VOCDetection

    bad = _voc_with(tmp_path, fx.voc_xml("000003.jpg", (64, 48), [("unicorn", 1, 1, 10, 10, 0, 0)]))
    with pytest.raises(UserError, match=rf"{bad}: object class 'unicorn' is not in the class list"):
        VOCDetection(tmp_path, "2007", "train")


def test_voc_box_outside_clipped_and_zero_area_dropped_with_counts(tmp_path: Path) -> None:
    from litvision.data.datasets.voc import VOCDetection

    objects = [
        ("car", 50, 30, 80, 60, 0, 0),  # reaches past the 64x48 image: clipped
        ("car", 10, 10, 9, 20, 0, 0),  # xmax < xmin - 1: no area, dropped
        ("car", 70, 5, 90, 20, 0, 0),  # entirely right of the image: zero area once clipped, dropped
        ("cat", 5, 5, 20, 20, 0, 0),
    ]
    _voc_with(tmp_path, fx.voc_xml("000003.jpg", (64, 48), objects))
    with pytest.warns(
        UserWarning,
        match=r"1 box\(es\) reaching outside the image were clipped .* 2 box\(es\) with zero area were dropped \(e.g. .*000003.xml\)",
    ):
        ds = VOCDetection(tmp_path, "2007", "train")
    _, target = ds[1]
    assert _boxes(target) == [[49.0, 29.0, 64.0, 48.0], [4.0, 4.0, 20.0, 20.0]]
    assert target["labels"].tolist() == [VOC["car"], VOC["cat"]]


def test_voc_missing_bndbox_field_names_the_file(tmp_path: Path) -> None:
    from litvision.data.datasets.voc import VOCDetection

    bad = _voc_with(
        tmp_path,
        "<annotation><filename>000003.jpg</filename><size><width>64</width><height>48</height></size>"
        "<object><name>car</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax></bndbox></object></annotation>",
    )
    with pytest.raises(UserError, match=rf"{bad}: <bndbox> has no <ymax>"):
        VOCDetection(tmp_path, "2007", "train")


# ---------------------------------------------------------------- COCO


def test_coco_reader_category_gaps_crowd_and_empty_images(tmp_path: Path) -> None:
    from litvision.data.datasets.coco import COCODetection

    fx.write_coco(tmp_path)
    ann = tmp_path / "annotations" / "instances_train2017.json"
    ds = COCODetection(tmp_path / "train2017", ann, keep_crowd=True, keep_empty=True)
    assert len(ds.category_ids) == 80 and ds.category_ids[:12] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13]
    assert ds.category_ids[-1] == 90 and ds.class_names[-1] == "toothbrush"
    image, target = ds[0]
    assert tuple(image.shape) == (3, 48, 64) and target["image_id"] == 1
    # x y w h -> XYXY; category 18 (dog) is label 16 after the gap at 12.
    assert _boxes(target) == [[4.0, 5.0, 29.0, 39.0], [0.0, 0.0, 30.0, 20.0]]
    assert target["labels"].tolist() == [0, 16] and target["iscrowd"].tolist() == [0, 1]
    assert target["area"].tolist() == [25.0 * 34.0, 30.0 * 20.0]
    _, empty = ds[1]
    assert empty["image_id"] == 2 and empty["boxes"].shape == (0, 4)
    _, target = ds[2]
    assert _boxes(target) == [[40.5, 19.0, 64.0, 48.0], [10.0, 10.0, 18.0, 18.0]]
    assert target["labels"].tolist() == [2, 79]
    # Training view: crowd dropped, images left without objects dropped.
    train = COCODetection(tmp_path / "train2017", ann, keep_crowd=False, keep_empty=False)
    assert train.image_ids == [1, 3]
    assert train[0][1]["labels"].tolist() == [0] and train[0][1]["iscrowd"].tolist() == [0]


def test_coco_datamodule_maps_labels_back_to_category_ids(tmp_path: Path, runs_dir: Path) -> None:
    dm = _datamodule("coco", tmp_path / "coco", runs_dir)
    assert dm.num_classes == 80 and dm.category_ids[16] == 18 and dm.class_names[16] == "dog"
    dm.setup("fit")
    assert dm.datasets["train"].dataset.image_ids == [1, 3]
    assert dm.datasets["val"].dataset.image_ids == [10, 11]
    images, targets = next(iter(dm.val_dataloader()))
    assert [t["image_id"] for t in targets] == [10, 11]
    assert targets[0]["iscrowd"].tolist() == [0, 1]  # the crowd person stays, flagged, for evaluation
    assert [dm.category_ids[label] for label in targets[1]["labels"].tolist()] == [17, 16]
    assert all(tuple(im.shape) == (3, 64, 64) and im.dtype == torch.float32 for im in images)
    # Boxes scaled with the image: 56x56 -> 64x64.
    _close(
        _boxes(targets[1]),
        [[0.0, 0.0, 20 * 64 / 56, 30 * 64 / 56], [29 * 64 / 56, 29 * 64 / 56, 50 * 64 / 56, 52 * 64 / 56]],
    )


def test_map_size_buckets_follow_the_annotation_area_not_the_box(tmp_path: Path, runs_dir: Path) -> None:
    """COCOeval buckets objects by the annotation's `area` (a mask's area), not the box's. Object A:
    an 80x80 box (medium) whose area is 900 (small), detected; object B: a 30x30 box (small) whose
    area is 6400 (medium), missed. So mAP_small is 1 and mAP_medium 0; box areas would swap them.
    Catches: the COCO reader giving the box area, or the transforms overwriting area with the box's."""
    from coco_helpers import write_coco_split

    from litvision.build import build_datamodule
    from litvision.data.datasets.coco import COCODetection
    from litvision.metrics.detection import make_map_metric, metric_targets

    anns = [(1, 17, [40.0, 40.0, 80.0, 80.0], 900.0), (1, 17, [250.0, 250.0, 30.0, 30.0], 6400.0)]
    for split in ("train2017", "val2017"):
        write_coco_split(tmp_path, split, {1: (400, 400)}, anns)

    def buckets(target: dict) -> tuple[float, float]:
        pred = {
            "boxes": _box_tensor(target)[:1],
            "scores": torch.tensor([0.9]),
            "labels": target["labels"][:1],
        }
        metric = make_map_metric(class_metrics=False)
        metric.update([pred], metric_targets([target]))
        result = metric.compute()
        return float(result["map_small"]), float(result["map_medium"])

    _, raw = COCODetection(tmp_path / "val2017", tmp_path / "annotations" / "instances_val2017.json")[0]
    assert raw["area"].tolist() == [900.0, 6400.0]
    assert buckets(raw) == (1.0, 0.0)
    # Through the DataModule's eval transform (400 -> 200 px): the areas scale with their boxes.
    cfg = compose_cfg(
        [
            "data=coco",
            f"data.root={tmp_path}",
            "data.num_classes=3",
            "data.splits={train: train2017, val: val2017, test: val2017}",
            "data.image_size=200",
            "data.num_workers=0",
        ],
        runs_dir,
    )
    dm = build_datamodule(cfg)
    dm.setup("validate")
    _, (target,) = next(iter(dm.val_dataloader()))
    _close(_boxes(target), [[20.0, 20.0, 60.0, 60.0], [125.0, 125.0, 140.0, 140.0]])
    torch.testing.assert_close(target["area"], torch.tensor([225.0, 1600.0]))
    assert buckets(target) == (1.0, 0.0)


def test_coco_gapped_category_ids_round_trip_into_detections_json(tmp_path: Path, runs_dir: Path) -> None:
    """Categories 1, 17 and 90 train as labels 0, 1, 2; the checkpoint carries the ids, and labels map
    back to each annotation's own id (coco_results) and into detections.json (predict's writer).
    Catches: the task not taking the data's category_ids (checkpoint without ids), and predict writing
    label + 1 (ids 1, 2, 3) into detections.json."""
    from coco_helpers import GAPPED, write_coco_split
    from conftest import run_cli, run_folders

    from litvision.build import build_datamodule
    from litvision.metrics.detection import coco_results
    from litvision.tasks.detection import DetectionTask
    from litvision.train import train

    anns = [
        (1, 90, [4.0, 4.0, 20.0, 20.0], None),
        (1, 1, [30.0, 30.0, 24.0, 20.0], None),
        (2, 17, [10.0, 20.0, 30.0, 30.0], None),
        (2, 90, [40.0, 2.0, 20.0, 12.0], None),
    ]
    for split in ("train2017", "val2017"):
        write_coco_split(tmp_path / "coco", split, {1: (64, 64), 2: (64, 48)}, anns)
    # The small YOLOv1 of yolov1_shapes on COCO-format data.
    base = [
        "experiment=yolov1_shapes",
        "data=coco",
        f"data.root={tmp_path / 'coco'}",
        "data.num_classes=3",
        "data.splits={train: train2017, val: val2017, test: val2017}",
        "data.image_size=64",
        "data.num_workers=0",
        "model.net.image_size=64",
        "model.net.grid_size=4",
        "model.net.head_channels=16",
    ]
    overrides = [
        *base,
        "trainer.max_epochs=1",
        "++trainer.limit_train_batches=1",
        "++trainer.limit_val_batches=1",
        "test=false",
        "logger=csv",
        "model.net.score_thresh=0.0",
    ]
    cfg = compose_cfg(overrides, runs_dir)
    dm = build_datamodule(cfg)
    assert dm.category_ids == [i for i, _ in GAPPED] and dm.class_names == [n for _, n in GAPPED]
    dm.setup("validate")
    targets = [t for _, batch in dm.val_dataloader() for t in batch]
    assert [dm.category_ids[label] for t in targets for label in t["labels"].tolist()] == [a[1] for a in anns]

    summary = train(cfg)
    ckpt = summary["last_checkpoint"]
    task = DetectionTask.load_from_checkpoint(ckpt, map_location="cpu")
    assert task.category_ids == [1, 17, 90]
    # The ground truth written back as COCO results carries each annotation's own category id.
    as_preds = [{**t, "scores": torch.ones(len(t["labels"]))} for t in targets]
    results = coco_results(as_preds, [t["image_id"] for t in targets], task.category_ids)
    assert [r["category_id"] for r in results] == [a[1] for a in anns]

    proc = run_cli(
        "litvision.predict",
        "experiment=yolov1_shapes",
        f"ckpt_path={ckpt}",
        f"input={tmp_path / 'coco' / 'val2017'}",
        f"paths.runs_dir={runs_dir / 'predict'}",
        "score_thresh=0.0",
        check=True,
    )
    (run,) = [f for f in run_folders(runs_dir / "predict") if f.name != ".hydra"]
    detections = json.loads((run / "detections.json").read_text())
    assert detections, proc.stdout
    assert {d["category_id"] for d in detections} <= {1, 17, 90}, {d["category_id"] for d in detections}


def _box_tensor(target: dict) -> torch.Tensor:
    return target["boxes"].as_subclass(torch.Tensor)


@pytest.mark.parametrize(
    ("size", "ok"),
    [
        (None, True),  # the experiment's own {min_size: 800, max_size: 1333}
        ([300, 400], True),
        (512, True),
        ({"min_size": 0, "max_size": 10}, False),
        ({"min_size": 800, "max_size": 600}, False),
        ([300], False),
    ],
)
def test_detection_image_size_forms_pass_the_preflight_check(size, ok: bool, runs_dir: Path) -> None:
    """Catches: data.image_size checked as an int only, which refused `make train EXP=fasterrcnn_coco`
    (and fcos_coco, fasterrcnn_voc) before any run folder, although the transforms read every form."""
    from omegaconf import OmegaConf

    from litvision.lifecycle.checks import check_values

    cfg = compose_cfg(["experiment=fasterrcnn_coco"], runs_dir)
    if size is not None:
        OmegaConf.update(cfg, "data.image_size", size, merge=False)
    if ok:
        check_values(cfg)
        return
    with pytest.raises(UserError, match=r"data.image_size=.* is not valid: expected .*min_size") as e:
        check_values(cfg)
    assert "\n" not in str(e.value)


def _coco_json(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "instances_bad.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("missing", ["images", "annotations"])
def test_coco_json_missing_key_names_the_file(tmp_path: Path, missing: str) -> None:
    from litvision.data.datasets.coco import COCODetection

    data = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"}]}
    del data[missing]
    path = _coco_json(tmp_path, data)
    with pytest.raises(UserError, match=rf"{path} has no '{missing}' list"):
        COCODetection(tmp_path, path)


def test_coco_annotation_pointing_at_missing_image(tmp_path: Path) -> None:
    from litvision.data.datasets.coco import COCODetection

    path = _coco_json(tmp_path, {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
        "annotations": [{"id": 7, "image_id": 2, "category_id": 1, "bbox": [0, 0, 5, 5], "iscrowd": 0}],
        "categories": [{"id": 1, "name": "a"}],
    })  # fmt: skip
    with pytest.raises(
        UserError, match=rf"{path}: annotation 7 points at image_id 2, which is not in 'images'"
    ):
        COCODetection(tmp_path, path)


def test_coco_missing_image_file_names_it(tmp_path: Path) -> None:
    from litvision.data.datasets.coco import COCODetection

    fx.write_coco(tmp_path)
    (tmp_path / "val2017" / "000000000011.jpg").unlink()
    ds = COCODetection(tmp_path / "val2017", tmp_path / "annotations" / "instances_val2017.json")
    with pytest.raises(
        UserError,
        match=r"lists image 000000000011.jpg \(id 11\) but .*val2017/000000000011.jpg does not exist",
    ):
        ds[1]


def test_coco_box_outside_image_clipped_with_warning(tmp_path: Path) -> None:
    from litvision.data.datasets.coco import COCODetection

    path = _coco_json(tmp_path, {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 2], "iscrowd": 0},
                        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [5, 5, 0, 3], "iscrowd": 0}],
        "categories": [{"id": 1, "name": "a"}],
    })  # fmt: skip
    with pytest.warns(
        UserWarning, match=rf"{path}: 1 box\(es\) .* clipped .* 1 box\(es\) with zero area were dropped"
    ):
        ds = COCODetection(tmp_path, path)
    assert ds.annotation(0)[0].tolist() == [[5.0, 5.0, 10.0, 7.0]]


def test_coco_missing_annotation_file_says_what_to_do(tmp_path: Path, runs_dir: Path) -> None:
    from litvision.data.datasets.coco import COCODataModule

    dm = COCODataModule(tmp_path)
    with pytest.raises(
        UserError, match=r"No COCO annotation file .*instances_val2017.json.*data.download=true"
    ):
        dm.num_classes  # noqa: B018


# ---------------------------------------------------------------- YOLO


def test_yolo_reader_boxes(tmp_path: Path) -> None:
    from litvision.data.datasets.yolo import YOLODetection

    fx.write_yolo(tmp_path)
    train = YOLODetection(tmp_path, "train")
    assert len(train.class_names) == 20 and train.class_names[14] == "person"
    assert [p["file"].name for p in train.items] == ["a.jpg", "b.jpg", "c.jpg"]
    assert _boxes(train[0][1]) == [[4.0, 6.0, 36.0, 42.0]] and train[0][1]["labels"].tolist() == [14]
    assert train[1][1]["boxes"].shape == (0, 4)
    assert _boxes(train[2][1]) == [[40.0, 24.0, 64.0, 48.0]] and train[2][1]["labels"].tolist() == [6]
    val = YOLODetection(tmp_path, "val")
    assert _boxes(val[0][1]) == [[0.0, 0.0, 28.0, 14.0], [28.0, 28.0, 42.0, 42.0]]
    assert val[0][1]["labels"].tolist() == [7, 2]
    assert val[1][1]["boxes"].shape == (0, 4)  # no label file


def test_yolo_datamodule_and_names_txt(tmp_path: Path, runs_dir: Path) -> None:
    from litvision.data.datasets.yolo import YOLODataModule

    dm = _datamodule("yolo", tmp_path / "yolo", runs_dir)
    assert dm.num_classes == 20
    dm.setup("test")
    images, targets = next(iter(dm.test_dataloader()))
    _close(_boxes(targets[0]), [[0.0, 0.0, 32.0, 16.0], [32.0, 32.0, 48.0, 48.0]])
    (tmp_path / "yolo" / "data.yaml").unlink()
    (tmp_path / "yolo" / "names.txt").write_text("a\nb\nc\nd\ne\nf\ng\nh\n")
    dm = YOLODataModule(tmp_path / "yolo", num_classes=8, image_size=64)
    assert dm.class_names[-1] == "h" and len(dm.raw_dataset("val")) == 2


@pytest.mark.parametrize(
    ("line", "message"),
    [("3 0.5 0.5 0.2", "expected `class cx cy w h`"), ("x 0.5 0.5 0.2 0.2", "expected an integer class"),
     ("20 0.5 0.5 0.2 0.2", "class 20 is outside 0..19")],
)  # fmt: skip
def test_yolo_bad_label_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    from litvision.data.datasets.yolo import YOLODetection

    fx.write_yolo(tmp_path)
    bad = tmp_path / "labels" / "train" / "a.txt"
    bad.write_text(f"14 0.3125 0.5 0.5 0.75\n{line}\n")
    with pytest.raises(UserError, match=rf"{bad}:2: {message}"):
        YOLODetection(tmp_path, "train")


def test_yolo_box_outside_image_clipped_with_warning(tmp_path: Path) -> None:
    from litvision.data.datasets.yolo import YOLODetection

    fx.write_yolo(tmp_path)
    (tmp_path / "labels" / "train" / "a.txt").write_text("14 0.9375 0.5 0.25 0.5\n14 0.5 0.5 0 0.5\n")
    with pytest.warns(
        UserWarning, match=r"1 box\(es\) reaching outside .* 1 box\(es\) with zero area were dropped"
    ):
        ds = YOLODetection(tmp_path, "train")
    assert _boxes(ds[0][1]) == [[52.0, 12.0, 64.0, 36.0]]


def test_draw_target_marks_ignored_objects(tmp_path: Path) -> None:
    from litvision.data.datasets.voc import VOC_CLASSES, VOCDetection
    from litvision.data.detection import draw_target

    fx.write_voc(tmp_path)
    image, target = VOCDetection(tmp_path, "2007", "test", keep_difficult=True)[0]
    drawn = draw_target(image.float() / 255, target, VOC_CLASSES)
    assert drawn.dtype == torch.uint8 and drawn.shape == image.shape
    assert drawn[:, 5, 4].tolist() == [255, 0, 0]  # the person's top-left corner, red
    assert drawn[:, 9, 9].tolist() == [128, 128, 128]  # the difficult dog, grey
    empty_image, empty = VOCDetection(tmp_path, "2007", "test")[1]
    assert torch.equal(draw_target(empty_image, empty, VOC_CLASSES), empty_image)


def test_yolo_without_names_says_what_to_add(tmp_path: Path) -> None:
    from litvision.data.datasets.yolo import YOLODetection

    fx.write_yolo(tmp_path)
    (tmp_path / "data.yaml").unlink()
    with pytest.raises(UserError, match=r"No class names .*data.yaml.*names.txt"):
        YOLODetection(tmp_path, "train")


# ---------------------------------------------------------------- converters


def test_yolo_worked_example_exact() -> None:
    from litvision.data.datasets.yolo import yolo_line, yolo_to_xyxy

    # Worked by hand: a 500x375 image with a box (69, 172, 270, 330): cx = 339 / 2 / 500 = 0.339,
    # cy = 502 / 2 / 375, w = 201 / 500, h = 158 / 375.
    assert yolo_line(0, (69, 172, 270, 330), 500, 375) == "0 0.339 0.6693333 0.402 0.4213333"
    assert yolo_to_xyxy((0.339, 0.6693333, 0.402, 0.4213333), 500, 375) == pytest.approx(
        (69, 172, 270, 330), abs=1e-4
    )


def test_voc2yolo_worked_example_and_difficult_skipped(tmp_path: Path) -> None:
    from litvision.data.datasets.convert import main

    voc = tmp_path / "voc"
    base = voc / "VOCdevkit" / "VOC2007"
    (base / "ImageSets" / "Main").mkdir(parents=True)
    (base / "Annotations").mkdir()
    fx._write_jpeg(base / "JPEGImages" / "000005.jpg", 500, 375, seed=0)
    # The pixel box (69, 172, 270, 330) in VOC's 1-based inclusive pixels: xmin = 69 + 1, xmax = 270.
    objects = [("chair", 70, 173, 270, 330, 0, 0), ("chair", 10, 10, 50, 50, 1, 0)]
    (base / "Annotations" / "000005.xml").write_text(fx.voc_xml("000005.jpg", (500, 375), objects))
    (base / "ImageSets" / "Main" / "trainval.txt").write_text("000005\n")
    out = tmp_path / "yolo"
    main(["voc2yolo", "--voc-root", str(voc), "--sets", "2007/trainval", "--out", str(out)])
    assert (
        out / "labels" / "trainval" / "000005.txt"
    ).read_text() == f"{VOC['chair']} 0.339 0.6693333 0.402 0.4213333\n"
    assert (out / "images" / "trainval" / "000005.jpg").read_bytes() == (
        base / "JPEGImages" / "000005.jpg"
    ).read_bytes()
    from litvision.data.datasets.yolo import read_names

    assert read_names(out)[VOC["chair"]] == "chair"


def test_voc_to_yolo_to_loader_same_boxes(tmp_path: Path) -> None:
    from litvision.data.datasets.convert import voc_to_yolo
    from litvision.data.datasets.voc import VOCDetection
    from litvision.data.datasets.yolo import YOLODetection

    fx.write_voc(tmp_path / "voc")
    counts = voc_to_yolo(tmp_path / "voc", ["2007/test"], tmp_path / "yolo")
    assert counts == {"images": 4, "boxes": 4, "difficult_skipped": 1}
    voc, yolo = VOCDetection(tmp_path / "voc", "2007", "test"), YOLODetection(tmp_path / "yolo", "test")
    for i in range(4):
        assert yolo[i][1]["labels"].tolist() == voc[i][1]["labels"].tolist()
        _close(_boxes(yolo[i][1]), _boxes(voc[i][1]), atol=1e-4)


def test_relative_paths_voc2yolo_then_yolo2coco(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The converters with relative folders, as the module's docstring runs them: the YOLO split is found
    (break: join a relative root to itself in yolo.split_dirs, as it did: tmp/y/tmp/y/images/...)."""
    from litvision.data.datasets.convert import main

    monkeypatch.chdir(tmp_path)
    fx.write_voc(Path("voc"))
    main(["voc2yolo", "--voc-root", "voc", "--sets", "2007/test", "--out", "data/voc_yolo"])
    main(["yolo2coco", "--root", "data/voc_yolo", "--split", "test", "--out", "data/voc_yolo/test.json"])
    coco = json.loads(Path("data/voc_yolo/test.json").read_text())
    assert len(coco["images"]) == 4 and len(coco["annotations"]) == 4


def test_yolo_to_coco_to_loader_same_boxes(tmp_path: Path) -> None:
    from litvision.data.datasets.coco import COCODetection
    from litvision.data.datasets.convert import main
    from litvision.data.datasets.yolo import YOLODetection

    fx.write_yolo(tmp_path / "yolo")
    out = tmp_path / "val.json"
    main(["yolo2coco", "--root", str(tmp_path / "yolo"), "--split", "val", "--out", str(out)])
    coco = COCODetection(tmp_path / "yolo" / "images" / "val", out)
    yolo = YOLODetection(tmp_path / "yolo", "val")
    assert coco.category_ids == list(range(1, 21)) and coco.class_names == yolo.class_names
    assert len(coco) == len(yolo) == 2
    for i in range(2):
        assert coco[i][1]["labels"].tolist() == yolo[i][1]["labels"].tolist()
        _close(_boxes(coco[i][1]), _boxes(yolo[i][1]), atol=1e-5)


def test_coco_to_yolo_skips_crowd(tmp_path: Path) -> None:
    from litvision.data.datasets.convert import coco_to_yolo
    from litvision.data.datasets.yolo import YOLODetection

    fx.write_coco(tmp_path / "coco")
    ann = tmp_path / "coco" / "annotations" / "instances_val2017.json"
    assert coco_to_yolo(ann, tmp_path / "coco" / "val2017", tmp_path / "yolo", "val") == {
        "images": 2,
        "boxes": 3,
    }
    yolo = YOLODetection(tmp_path / "yolo", "val")
    assert len(yolo.class_names) == 80 and yolo.class_names[79] == "toothbrush"
    _close(_boxes(yolo[0][1]), [[4.0, 5.0, 29.0, 39.0]], atol=1e-4)
    assert yolo[1][1]["labels"].tolist() == [15, 14]


# ---------------------------------------------------------------- transforms and collate


def _sample(boxes: list[list[float]], labels: list[int], h: int = 48, w: int = 64):
    from torchvision import tv_tensors

    from litvision.data.detection import make_target

    image = tv_tensors.Image(
        torch.arange(3 * h * w, dtype=torch.int64).remainder(251).to(torch.uint8).reshape(3, h, w)
    )
    return image, make_target(boxes, labels, (h, w), image_id=3, iscrowd=[0] * (len(labels) - 1) + [1])


def test_train_transform_flip_moves_boxes_with_the_image() -> None:
    from litvision.data.transforms.detection import detection_transforms

    image, target = _sample([[4, 5, 30, 40], [50, 0, 64, 10]], [1, 2])
    t = detection_transforms(train=True, image_size=[48, 64], hflip=1.0, photometric=0.0)
    out, tgt = t(image, target)
    assert out.dtype == torch.float32 and float(out.max()) <= 1.0
    torch.testing.assert_close(out.as_subclass(torch.Tensor), image.flip(-1).float() / 255)
    # x -> W - x: (4, 30) -> (34, 60); (50, 64) -> (0, 14).
    assert _boxes(tgt) == [[34.0, 5.0, 60.0, 40.0], [0.0, 0.0, 14.0, 10.0]]
    assert tgt["labels"].tolist() == [1, 2] and tgt["iscrowd"].tolist() == [0, 1] and tgt["image_id"] == 3


def test_eval_transform_resizes_boxes_and_drops_degenerate_ones() -> None:
    from litvision.data.detection import TransformedDataset
    from litvision.data.transforms.detection import detection_transforms

    # The middle box is 1 px tall: 0.67 px after 48 -> 32 resizing, so it goes with its label/iscrowd/area.
    sample = _sample([[4, 6, 30, 42], [10, 20, 40, 21], [32, 0, 64, 48]], [1, 2, 3])
    ds = TransformedDataset([sample], detection_transforms(train=False, image_size=32))
    out, tgt = ds[0]
    assert tuple(out.shape) == (3, 32, 32)
    _close(_boxes(tgt), [[2.0, 4.0, 15.0, 28.0], [16.0, 0.0, 32.0, 32.0]])
    assert tgt["labels"].tolist() == [1, 3] and tgt["iscrowd"].tolist() == [0, 1]
    assert tgt["area"].tolist() == pytest.approx([13.0 * 24.0, 16.0 * 32.0])


def test_shortest_side_resize_and_scale_jitter() -> None:
    from litvision.data.transforms.detection import detection_transforms

    image, target = _sample([[4, 6, 30, 42]], [1])
    out, tgt = detection_transforms(train=False, image_size={"min_size": 96, "max_size": 100})(image, target)
    assert tuple(out.shape[-2:]) == (75, 100)  # shortest side 96 would make the long side 128 > 100
    _close(_boxes(tgt), [[4 * 100 / 64, 6 * 75 / 48, 30 * 100 / 64, 42 * 75 / 48]])
    t = detection_transforms(
        train=True, image_size={"min_size": 48, "max_size": 1000}, scale_range=(0.5, 1.0)
    )
    sizes = {tuple(t(image, target)[0].shape[-2:]) for _ in range(30)}
    assert len(sizes) > 1 and all(24 <= h <= 48 for h, _ in sizes)


def test_bad_image_size_is_a_user_error() -> None:
    from litvision.data.transforms.detection import detection_transforms

    with pytest.raises(UserError, match=r"data.image_size='big' is not understood"):
        detection_transforms(train=False, image_size="big")


def test_collates_list_and_padded_with_mask() -> None:
    from litvision.data.detection import detection_collate, padded_collate

    a = _sample([[1, 1, 5, 5]], [0], h=4, w=6)
    b = _sample([[0, 0, 2, 2], [1, 1, 3, 3]], [1, 2], h=5, w=3)
    images, targets = detection_collate([a, b])
    assert images[0] is a[0] and targets[1] is b[1]
    padded, mask, targets = padded_collate([a, b])
    assert padded.shape == (2, 3, 5, 6) and mask.shape == (2, 5, 6) and mask.dtype == torch.bool
    assert torch.equal(padded[0, :, :4, :6], a[0]) and torch.equal(padded[1, :, :5, :3], b[0])
    assert int(padded[0, :, 4:].abs().sum()) == 0 and int(padded[1, :, :, 3:].abs().sum()) == 0
    assert mask[0, 4].all() and not mask[0, :4].any()
    assert mask[1, :, 3:].all() and not mask[1, :, :3].any()
    assert targets[1]["labels"].tolist() == [1, 2]
    padded, mask, _ = padded_collate([a, b], size_divisor=4)
    assert padded.shape == (2, 3, 8, 8) and mask[1, 5:].all()


def test_padded_collate_from_a_datamodule(tmp_path: Path, runs_dir: Path) -> None:
    dm = _datamodule(
        "voc", tmp_path / "voc", runs_dir, "data.collate=padded", "data.image_size={min_size:32,max_size:64}"
    )
    dm.setup("test")
    images, mask, targets = next(iter(dm.test_dataloader()))
    # 64x48 -> 42x32 (shortest side 32, floor(42.67)) and 48x40 -> 38x32: padded to 42 wide.
    assert images.shape == (2, 3, 32, 42) and mask.shape == (2, 32, 42)
    assert not mask[0].any() and mask[1, :, 38:].all() and not mask[1, :, :38].any()
    assert len(targets) == 2


# ---------------------------------------------------------------- shapes


def test_shapes_deterministic_and_both_loaders_agree(tmp_path: Path) -> None:
    from litvision.data.datasets.coco import COCODetection
    from litvision.data.datasets.shapes import SHAPES_CLASSES, generate
    from litvision.data.datasets.voc import VOCDetection

    a = generate(tmp_path / "a", num_train=6, num_val=2, num_test=2, image_size=64, seed=3)
    b = generate(tmp_path / "b", num_train=6, num_val=2, num_test=2, image_size=64, seed=3)
    c = generate(tmp_path / "c", num_train=6, num_val=2, num_test=2, image_size=64, seed=4)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 1 + 3 * 10 + 4 + 3  # meta, (jpg, xml, coco jpg) per image, 4 split files, 3 json
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert (a / "coco/annotations/instances_train.json").read_text() != (
        c / "coco/annotations/instances_train.json"
    ).read_text()
    for split in ("train", "val", "test"):
        voc = VOCDetection(a, "2007", split, SHAPES_CLASSES)
        coco = COCODetection(a / "coco" / split, a / "coco" / "annotations" / f"instances_{split}.json")
        assert coco.class_names == list(SHAPES_CLASSES) and len(voc) == len(coco)
        for i in range(len(voc)):
            (vi, vt), (ci, ct) = voc[i], coco[i]
            assert torch.equal(vi, ci) and tuple(vi.shape) == (3, 64, 64)
            assert _boxes(vt) == _boxes(ct) and vt["labels"].tolist() == ct["labels"].tolist()
            assert len(vt["labels"]) >= 1
            wh = vt["boxes"][:, 2:] - vt["boxes"][:, :2]
            assert (wh >= 0.2 * 64 - 1).all()  # not tiny


def test_shapes_datamodule_generates_on_first_use(tmp_path: Path, runs_dir: Path) -> None:
    dm = _datamodule("shapes_voc", tmp_path, runs_dir)
    root = tmp_path / "shapes"
    assert not root.exists()
    dm.prepare_data()
    meta = json.loads((root / "meta.json").read_text())
    assert meta["num_train"] == 8 and meta["image_size"] == 64
    stamp = (root / "meta.json").stat().st_mtime_ns
    dm.setup("fit")
    assert (root / "meta.json").stat().st_mtime_ns == stamp  # not regenerated
    images, targets = next(iter(dm.train_dataloader()))
    assert dm.num_classes == 3 and len(images) == 2 and tuple(images[0].shape) == (3, 64, 64)
    coco = _datamodule("shapes_coco", tmp_path, runs_dir)
    assert coco.category_ids == [1, 2, 3] and coco.class_names == ["circle", "square", "triangle"]
    coco.setup("test")
    assert len(coco.datasets["test"]) == 4
    assert (root / "meta.json").stat().st_mtime_ns == stamp
    # Changing the generation parameters regenerates.
    dm = _datamodule("shapes_voc", tmp_path, runs_dir, "data.generate.num_train=5")
    dm.prepare_data()
    assert json.loads((root / "meta.json").read_text())["num_train"] == 5


def test_shapes_refuses_to_replace_a_foreign_folder(tmp_path: Path) -> None:
    from litvision.data.datasets.shapes import generate

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("keep me")
    with pytest.raises(UserError, match=r"mine exists and is not a litvision shapes dataset"):
        generate(tmp_path / "mine", num_train=1, num_val=1, num_test=1, image_size=32)
    assert (tmp_path / "mine" / "precious.txt").read_text() == "keep me"


def test_converter_cli_error_exits_2(tmp_path: Path, capsys) -> None:
    from litvision.data.datasets.convert import main

    with pytest.raises(SystemExit) as exit_info:
        main(["yolo2coco", "--root", str(tmp_path), "--split", "val", "--out", str(tmp_path / "x.json")])
    assert exit_info.value.code == 2
    assert f"error: No class names for the YOLO dataset at {tmp_path}" in capsys.readouterr().err


def test_shapes_cli(tmp_path: Path, capsys) -> None:
    from litvision.data.datasets.shapes import main

    main(
        [
            "--out",
            str(tmp_path / "s"),
            "--num-train",
            "2",
            "--num-val",
            "1",
            "--num-test",
            "1",
            "--image-size",
            "48",
        ]
    )
    assert "Wrote 4 shapes images (48 px)" in capsys.readouterr().out
    assert (tmp_path / "s" / "VOCdevkit" / "VOC2007" / "ImageSets" / "Main" / "trainval.txt").read_text().split() == [
        "000001", "000002", "000003"]  # fmt: skip


def test_fixtures_registered_for_every_detection_config() -> None:
    for name in ("voc", "coco", "yolo", "shapes_voc", "shapes_coco"):
        assert fixtures.fixture_maker(name) is not None


def test_no_warnings_on_clean_fixtures(tmp_path: Path) -> None:
    from litvision.data.datasets.coco import COCODetection
    from litvision.data.datasets.voc import VOCDetection

    fx.write_voc(tmp_path / "voc")
    fx.write_coco(tmp_path / "coco")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        VOCDetection(tmp_path / "voc", "2007", "test")
        COCODetection(
            tmp_path / "coco" / "val2017", tmp_path / "coco" / "annotations" / "instances_val2017.json"
        )
