"""Test-only writer of small COCO-format datasets with chosen category ids and annotation areas."""

from __future__ import annotations

import json
from pathlib import Path

from litvision.data.fixtures.detection import _write_jpeg

#: Gapped category ids, as in COCO (1..90 with holes): labels 0, 1, 2 map back to 1, 17, 90.
GAPPED = [(1, "person"), (17, "cat"), (90, "toothbrush")]


def write_coco_split(
    root: Path,
    split: str,
    images: dict[int, tuple[int, int]],
    annotations: list[tuple[int, int, list[float], float | None]],
    categories: list[tuple[int, str]] = GAPPED,
) -> Path:
    """`<root>/<split>/<id>.jpg` (random pixels, width x height from `images`) and
    `<root>/annotations/instances_<split>.json` with (image_id, category_id, [x, y, w, h], area)
    annotations; an area of None is left out of the file."""
    anns = []
    for k, (image_id, category_id, bbox, area) in enumerate(annotations, start=1):
        ann = {"id": k, "image_id": image_id, "category_id": category_id, "bbox": bbox, "iscrowd": 0}
        if area is not None:
            ann["area"] = area
        anns.append(ann)
    data = {
        "images": [
            {"id": i, "file_name": f"{i}.jpg", "width": w, "height": h} for i, (w, h) in images.items()
        ],
        "annotations": anns,
        "categories": [{"id": i, "name": n} for i, n in categories],
    }
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))
    for i, (w, h) in images.items():
        _write_jpeg(root / split / f"{i}.jpg", w, h, seed=i)
    return root
