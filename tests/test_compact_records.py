"""Per-sample records in flat arrays (data/pipeline/records.py): a large COCO file loads into the
compact index with the same records as pycocotools' plain reader, within a memory bound, and its
cached arrays (a second load) give the same records again."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

IMAGES, BOXES = 20_000, 60_000


@pytest.fixture(scope="module")
def coco_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20k images, 60k boxes in COCO's schema, gapped category ids, some crowd boxes, some boxes
    reaching past their image (clipped), and images with no boxes."""
    rng = np.random.default_rng(7)
    wh = rng.integers(50, 400, (IMAGES, 2))
    owner = rng.integers(0, IMAGES - 500, BOXES)  # the last 500 images have no boxes
    cat_ids = [1, 3, 7, 90]
    images = [
        {"id": int(i * 3 + 5), "file_name": f"im{i:06d}.jpg", "width": int(w), "height": int(h)}
        for i, (w, h) in enumerate(wh)
    ]
    anns = []
    for j, o in enumerate(owner.tolist()):
        w, h = wh[o]
        x, y = float(rng.random() * w), float(rng.random() * h)
        bw, bh = (
            float(rng.random() * w * 0.6 + 1),
            float(rng.random() * h * 0.6 + 1),
        )  # may reach past the edge
        anns.append(
            {"id": j + 1, "image_id": int(o * 3 + 5), "category_id": cat_ids[j % 4], "bbox": [x, y, bw, bh],
             "area": bw * bh, "iscrowd": int(j % 17 == 0)}
        )  # fmt: skip
    cats = [{"id": c, "name": f"c{c}"} for c in cat_ids]
    path = tmp_path_factory.mktemp("coco20k") / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def _plain_records(
    path: Path, sample: list[int]
) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, str]]:
    """image id -> (XYXY boxes clipped to the image, labels, iscrowd, file name) read with pycocotools."""
    import contextlib
    import io

    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(path))
    labels = {c: i for i, c in enumerate(sorted(coco.cats))}
    out = {}
    for image_id in sample:
        info = coco.imgs[image_id]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
        xywh = np.array([a["bbox"] for a in anns], dtype=np.float32).reshape(-1, 4)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, info["width"])
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, info["height"])
        out[image_id] = (
            boxes,
            np.array([labels[a["category_id"]] for a in anns], dtype=np.int64),
            np.array([a["iscrowd"] for a in anns], dtype=np.int64),
            info["file_name"],
        )
    return out


def test_large_coco_file_loads_into_the_compact_index_with_the_plain_readers_records(
    coco_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catches: boxes sliced by the wrong offsets (`offsets[i + 1]:offsets[i + 2]`: the next image's
    boxes), and XYWH taken for XYXY (`x + w` dropped); also a cached index (second load) that differs."""
    import warnings

    from litvision.data.datasets.coco import COCODetection
    from litvision.data.pipeline.records import PathTable

    monkeypatch.setenv("LITVISION_CACHE_DIR", str(tmp_path / "cache"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the clipped boxes' warning
        first = COCODetection(coco_file.parent, coco_file)
        second = COCODetection(coco_file.parent, coco_file)  # from the cached arrays
    assert list((tmp_path / "cache" / "coco_index").glob("*.npz"))
    assert len(first) == len(second) == IMAGES
    rng = np.random.default_rng(0)
    sample = sorted({*rng.choice(IMAGES, 300, replace=False).tolist(), 0, IMAGES - 1})
    ids = first.image_ids
    plain = _plain_records(coco_file, [ids[i] for i in sample])
    for ds in (first, second):
        for i in sample:
            image_id, path, (h, w) = ds.image_info(i)
            boxes, labels, crowd = (t.numpy() for t in ds.annotation(i))
            want = plain[image_id]
            assert path.name == want[3]
            np.testing.assert_allclose(boxes, want[0], rtol=0, atol=1e-3, err_msg=f"image {image_id}")
            np.testing.assert_array_equal(labels, want[1])
            np.testing.assert_array_equal(crowd, want[2])
    # Memory: flat arrays only (no per-image Python objects), within 64 bytes a box and 64 an image.
    held = 0
    for name, value in vars(first).items():
        if isinstance(value, (np.ndarray, PathTable)):
            held += value.nbytes
        elif isinstance(value, (list, dict, tuple)):
            assert len(value) < 100, f"COCODetection.{name} holds {len(value)} Python objects"
    assert held <= 64 * BOXES + 64 * IMAGES, held


@pytest.mark.parametrize("names", [["a/b.png", "c.png", "dd/e f.jpg"], ["a/b.png", "ü/é.png", "c.png"]])
def test_path_table_texts_are_the_paths_at_the_indices(names: list[str]) -> None:
    """`texts(indices)` (the duplicate check's paths, decoded in one pass) equals `text(i)` for each
    index, in the indices' order, with negative indices and non-ASCII names. Catches byte offsets used
    as string offsets for a non-ASCII buffer, the order of `indices` lost, and an index off by one."""
    from litvision.data.pipeline.records import PathTable

    table = PathTable([f"/data/{n}" for n in names])
    idx = [2, 0, -2, 0]
    assert table.texts(idx) == [table.text(i) for i in idx] == [f"/data/{names[i]}" for i in idx]
    assert table.texts() == [f"/data/{n}" for n in names]
    assert table.texts([]) == []
    with pytest.raises(IndexError):
        table.texts([3])
