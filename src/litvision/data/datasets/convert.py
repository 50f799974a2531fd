"""Convert detection datasets between VOC XML, COCO JSON and YOLO txt.

    python -m litvision.data.datasets.convert voc2yolo --voc-root data/voc --sets 2007/trainval 2007/test --out data/voc_yolo
    python -m litvision.data.datasets.convert coco2yolo --ann data/coco/annotations/instances_val2017.json \\
        --images data/coco/val2017 --split val --out data/coco_yolo
    python -m litvision.data.datasets.convert yolo2coco --root data/voc_yolo --split test --out data/voc_yolo/test.json

voc2yolo skips `difficult` objects, as the classic conversion does; coco2yolo skips crowd
annotations. yolo2coco writes an instances file (category ids 1..C, `file_name` relative to the
split's image folder) for COCO-style evaluation. Images are hard-linked where the filesystem
allows, copied otherwise. Boxes go through the same 0-based XYXY coordinates as the readers
(VOC: x1 = xmin - 1, x2 = xmax; see litvision/data/datasets/voc.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from litvision.errors import UserError


def _place_image(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _write_data_yaml(out: Path, names: Sequence[str], splits: Sequence[str]) -> None:
    import yaml

    data_yaml = out / "data.yaml"
    data = yaml.safe_load(data_yaml.read_text()) if data_yaml.is_file() else {}
    data = data or {}
    if data.get("names") and list(data["names"]) != list(names):
        raise UserError(f"{data_yaml} already lists different class names; write to an empty --out folder.")
    data["names"] = list(names)
    for split in splits:
        data[split] = f"images/{split}"
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False))


def voc_to_yolo(
    voc_root: str | Path,
    sets: Sequence[str],
    out: str | Path,
    class_names: Sequence[str] | None = None,
) -> dict[str, int]:
    """VOC `<year>/<split>` sets -> YOLO `images/<split>`, `labels/<split>`, `data.yaml`.

    Returns counts: images, boxes written, difficult boxes skipped.
    """
    from litvision.data.datasets.voc import VOC_CLASSES, parse_voc_xml, voc_year_dir
    from litvision.data.datasets.yolo import yolo_line
    from litvision.data.detection import BoxStats

    voc_root, out = Path(voc_root), Path(out)
    names = list(class_names) if class_names else list(VOC_CLASSES)
    class_to_idx = {c: i for i, c in enumerate(names)}
    counts = {"images": 0, "boxes": 0, "difficult_skipped": 0}
    splits = []
    stats = BoxStats()
    for entry in sets:
        if "/" not in entry:
            raise UserError(f"--sets entry {entry!r} must look like 2007/trainval.")
        year, split = entry.split("/", 1)
        base = voc_year_dir(voc_root, year)
        split_file = base / "ImageSets" / "Main" / f"{split}.txt"
        if not split_file.is_file():
            raise UserError(
                f"No VOC split file {split_file}; check --voc-root (the folder holding VOCdevkit/)."
            )
        # 2007/test and 2012/val land in one YOLO split named after the VOC split.
        splits.append(split)
        for image_id in (s.split()[0] for s in split_file.read_text().splitlines() if s.strip()):
            rec = parse_voc_xml(
                base / "Annotations" / f"{image_id}.xml", class_to_idx, base / "JPEGImages", stats
            )
            # VOC2007 ids (000005) and VOC2012 ids (2008_000002) never collide: keep them.
            stem = image_id
            _place_image(rec.image, out / "images" / split / f"{stem}{rec.image.suffix}")
            lines = [
                yolo_line(int(label), box.tolist(), rec.width, rec.height)
                for box, label, difficult in zip(rec.boxes, rec.labels, rec.difficult, strict=True)
                if not difficult
            ]
            label_file = out / "labels" / split / f"{stem}.txt"
            label_file.parent.mkdir(parents=True, exist_ok=True)
            label_file.write_text("".join(f"{line}\n" for line in lines))
            counts["images"] += 1
            counts["boxes"] += len(lines)
            counts["difficult_skipped"] += int(rec.difficult.sum())
    stats.warn(voc_root)
    _write_data_yaml(out, names, sorted(set(splits)))
    return counts


def coco_to_yolo(ann_file: str | Path, image_dir: str | Path, out: str | Path, split: str) -> dict[str, int]:
    """A COCO instances file -> YOLO (labels are the contiguous category order); crowd skipped."""
    from litvision.data.datasets.coco import COCODetection
    from litvision.data.datasets.yolo import yolo_line

    ds = COCODetection(image_dir, ann_file, keep_crowd=False, keep_empty=True)
    out = Path(out)
    counts = {"images": 0, "boxes": 0}
    for index in range(len(ds)):
        _, src, (height, width) = ds.image_info(index)
        boxes, labels, _ = ds.annotation(index)
        if not src.is_file():
            raise UserError(f"{ann_file} lists {src.name} but {src} does not exist; check --images.")
        _place_image(src, out / "images" / split / src.name)
        label_file = out / "labels" / split / f"{src.stem}.txt"
        label_file.parent.mkdir(parents=True, exist_ok=True)
        lines = [
            yolo_line(int(label), box.tolist(), width, height)
            for box, label in zip(boxes, labels, strict=True)
        ]
        label_file.write_text("".join(f"{line}\n" for line in lines))
        counts["images"] += 1
        counts["boxes"] += len(lines)
    _write_data_yaml(out, ds.class_names, [split])
    return counts


def yolo_to_coco(root: str | Path, split: str, out: str | Path) -> dict[str, int]:
    """A YOLO split -> a COCO instances JSON (category id = class index + 1)."""
    from litvision.data.datasets.yolo import YOLODetection

    ds = YOLODetection(root, split)
    images, annotations = [], []
    for i, item in enumerate(ds.items, start=1):
        height, width = item["size"]
        images.append({"id": i, "file_name": item["file"].name, "width": width, "height": height})
        for box, label in zip(item["boxes"].tolist(), item["labels"].tolist(), strict=True):
            x1, y1, x2, y2 = box
            annotations.append(
                {"id": len(annotations) + 1, "image_id": i, "category_id": label + 1,
                 "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0}
            )  # fmt: skip
    categories = [{"id": i + 1, "name": n, "supercategory": "none"} for i, n in enumerate(ds.class_names)]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return {"images": len(images), "boxes": len(annotations)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m litvision.data.datasets.convert", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("voc2yolo", help="VOCdevkit -> YOLO txt (difficult objects skipped)")
    p.add_argument("--voc-root", required=True, help="folder holding VOCdevkit/")
    p.add_argument(
        "--sets", nargs="+", default=["2007/trainval", "2007/test"], help="e.g. 2007/trainval 2012/trainval"
    )
    p.add_argument("--out", required=True)
    p.add_argument(
        "--classes", nargs="+", default=None, help="class names in label order (default: the 20 VOC classes)"
    )
    p = sub.add_parser("coco2yolo", help="COCO instances JSON -> YOLO txt (crowd skipped)")
    p.add_argument("--ann", required=True, help="instances_<split>.json")
    p.add_argument("--images", required=True, help="the split's image folder")
    p.add_argument("--split", required=True, help="YOLO split name to write (train, val, ...)")
    p.add_argument("--out", required=True)
    p = sub.add_parser("yolo2coco", help="YOLO txt split -> COCO instances JSON")
    p.add_argument("--root", required=True, help="YOLO dataset folder (with data.yaml or names.txt)")
    p.add_argument("--split", required=True)
    p.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    from litvision.errors import guarded

    if args.command == "voc2yolo":
        counts = guarded(voc_to_yolo, args.voc_root, args.sets, args.out, args.classes)
    elif args.command == "coco2yolo":
        counts = guarded(coco_to_yolo, args.ann, args.images, args.out, args.split)
    else:
        counts = guarded(yolo_to_coco, args.root, args.split, args.out)
    print(f"{args.command}: " + ", ".join(f"{k}={v}" for k, v in counts.items()) + f" -> {args.out}")


if __name__ == "__main__":
    main()
