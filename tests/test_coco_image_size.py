"""A COCO image entry without `width`/`height` (other tools' files leave them out): the size is read
from the image file's header; when that file cannot be read either, one line names the annotation
file, the image id and the file, before training, with no run folder left."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli, run_folders
from test_detection_category_ids import SIZE, data_overrides, write_gapped_coco


def _drop_size(root: Path, split: str, position: int) -> dict:
    """Remove width and height from the `position`-th image entry of a split; returns the entry."""
    ann = root / "annotations" / f"instances_{split}.json"
    data = json.loads(ann.read_text())
    entry = data["images"][position]
    del entry["width"], entry["height"]
    ann.write_text(json.dumps(data))
    return entry


@pytest.fixture
def coco(tmp_path: Path) -> Path:
    root = tmp_path / "coco"
    write_gapped_coco(root, {"train": 4, "val": 2, "test": 2})
    return root


def test_missing_size_is_read_from_the_image(coco: Path) -> None:
    """Catches: a KeyError on the entry (the size read only from the JSON), and a size read from the
    file but not used to clip the boxes (the entry's size stays unknown)."""
    from litvision.data.datasets.coco import COCODetection

    entry = _drop_size(coco, "train", 1)
    ds = COCODetection(coco / "train", coco / "annotations" / "instances_train.json")
    index = ds.image_ids.index(entry["id"])
    image_id, path, size = ds.image_info(index)
    assert (image_id, path.name, tuple(size)) == (entry["id"], entry["file_name"], (SIZE, SIZE))
    assert ds.coco.imgs[entry["id"]]["width"] == SIZE


@pytest.mark.parametrize("bad", [{"width": 0, "height": 64}, {"width": "64", "height": 64}])
def test_nonsense_sizes_are_named(coco: Path, bad: dict) -> None:
    """Catches: a zero or text size accepted (boxes clipped to nothing, or a TypeError deep in numpy)."""
    from litvision.data.datasets.coco import COCODetection
    from litvision.errors import UserError

    ann = coco / "annotations" / "instances_val.json"
    data = json.loads(ann.read_text())
    data["images"][0].update(bad)
    ann.write_text(json.dumps(data))
    with pytest.raises(UserError, match=rf"{ann}: image {data['images'][0]['id']} has width="):
        COCODetection(coco / "val", ann)


def test_missing_size_and_missing_file_is_one_line_without_a_run_folder(coco: Path, tmp_path: Path) -> None:
    """Through the CLI. Catches: the KeyError traceback and the orphan run folder of the old reader, and
    a message that does not name the image id and the file."""
    entry = _drop_size(coco, "train", 1)
    (coco / "train" / entry["file_name"]).unlink()
    runs = tmp_path / "runs"
    proc = run_cli(
        "litvision", "fit", "experiment=fasterrcnn_shapes", *data_overrides(coco), "debug=limit",
        f"model.net.min_size={SIZE}", f"model.net.max_size={SIZE}", f"paths.runs_dir={runs}",
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    ann = coco / "annotations" / "instances_train.json"
    assert f"{ann}: image {entry['id']} has no 'width'/'height'" in errors[0]
    assert str(coco / "train" / entry["file_name"]) in errors[0]
    assert not runs.exists() or (run_folders(runs) == [] and list(runs.rglob("*")) == [])
