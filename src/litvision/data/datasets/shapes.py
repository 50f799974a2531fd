"""Shapes: a synthetic detection dataset generated offline, written as both VOC XML and COCO JSON.

Filled circles, squares and triangles of random size, colour and position, partly
overlapping, on noisy textured backgrounds. The same images and boxes are written in the
VOCdevkit layout and as COCO instances files, so the real VOC and COCO readers load them:

    <out>/VOCdevkit/VOC2007/{Annotations,ImageSets/Main/{train,val,test,trainval}.txt,JPEGImages}
    <out>/coco/annotations/instances_{train,val,test}.json    <out>/coco/{train,val,test}/*.jpg
    <out>/meta.json                                            the generation parameters

Boxes are the tight boxes of each shape's drawn pixels (before later shapes occlude it);
a placement that would hide more than `max_cover` of an earlier shape is redrawn, so every
object stays recognisable. Generation is seeded and cheap (about 10 ms an image at 128 px, so
the default 768 images take ~10 s once):

    python -m litvision.data.datasets.shapes --out data/shapes --num-train 512 --num-val 128 --num-test 128
    make train EXP=fasterrcnn_shapes      # the shapes DataModules generate data/shapes on first use
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

SHAPES_CLASSES: tuple[str, ...] = ("circle", "square", "triangle")
log = logging.getLogger(__name__)

FORMAT_VERSION = 1


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured background: a random base colour, smooth low-frequency blobs and stripes."""
    base = rng.uniform(70, 185, size=3)
    grid = rng.normal(0, 22, size=(5, 5, 3))
    # Bilinear upsampling of a coarse grid gives smooth blotches.
    coords = np.linspace(0, 4, size)
    i0 = np.clip(np.floor(coords).astype(int), 0, 3)
    t = (coords - i0)[:, None]
    rows = grid[i0] * (1 - t[:, :, None]) + grid[i0 + 1] * t[:, :, None]  # [size, 5, 3]
    blot = rows[:, i0] * (1 - t.T[:, :, None]) + rows[:, i0 + 1] * t.T[:, :, None]  # [size, size, 3]
    yy, xx = np.mgrid[0:size, 0:size]
    angle, freq = rng.uniform(0, np.pi), rng.uniform(0.05, 0.25)
    stripes = 10 * np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy))[:, :, None]
    return base + blot + stripes, base


def _colour(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """A colour well away from the background's base colour (L1 distance > 150)."""
    for _ in range(100):
        c = rng.uniform(0, 255, size=3)
        if np.abs(c - background).sum() > 150:
            return c
    return 255 - background


def _shape_mask(kind: str, size: int, x0: int, y0: int, side: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image, ImageDraw

    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    x1, y1 = x0 + side - 1, y0 + side - 1
    if kind == "circle":
        draw.ellipse([x0, y0, x1, y1], fill=255)
    elif kind == "square":
        draw.rectangle([x0, y0, x1, y1], fill=255)
    else:
        # Pointing up or down: orientation varies, the shape stays a triangle.
        if rng.random() < 0.5:
            pts = [((x0 + x1) / 2, y0), (x0, y1), (x1, y1)]
        else:
            pts = [(x0, y0), (x1, y0), ((x0 + x1) / 2, y1)]
        draw.polygon(pts, fill=255)
    return np.asarray(mask) > 0


def _box_of(mask: np.ndarray) -> list[int]:
    """Tight 0-based continuous XYXY box of a pixel mask: pixel columns c0..c1 span [c0, c1 + 1]."""
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1]


def make_image(
    rng: np.random.Generator,
    size: int = 128,
    max_objects: int = 4,
    min_side: float = 0.2,
    max_side: float = 0.5,
    max_cover: float = 0.35,
) -> tuple[np.ndarray, list[tuple[int, list[int]]]]:
    """One uint8 HxWx3 image and its objects as (label, [x1, y1, x2, y2]) in 0-based pixels."""
    canvas, base = _background(rng, size)
    owner = np.full((size, size), -1, dtype=np.int64)  # which object each pixel shows
    objects: list[tuple[int, list[int]]] = []
    areas: list[int] = []
    n = int(rng.integers(1, max_objects + 1))
    for _ in range(n):
        for _attempt in range(20):
            label = int(rng.integers(len(SHAPES_CLASSES)))
            side = int(rng.integers(int(min_side * size), int(max_side * size) + 1))
            x0, y0 = (int(v) for v in rng.integers(0, size - side + 1, size=2))
            mask = _shape_mask(SHAPES_CLASSES[label], size, x0, y0, side, rng)
            under = owner[mask]
            covered = np.bincount(under[under >= 0], minlength=len(objects))
            shown = np.bincount(owner[owner >= 0], minlength=len(objects))
            if all(shown[j] - covered[j] >= (1 - max_cover) * areas[j] for j in range(len(objects))):
                break
        else:
            continue  # no room left for another object in this image
        colour = _colour(rng, base)
        canvas[mask] = colour + rng.normal(0, 6, size=(int(mask.sum()), 3))
        owner[mask] = len(objects)
        objects.append((label, _box_of(mask)))
        areas.append(int(mask.sum()))
    canvas += rng.normal(0, 6, size=canvas.shape)
    return np.clip(canvas, 0, 255).astype(np.uint8), objects


def _voc_xml(filename: str, size: int, objects: Sequence[tuple[int, list[int]]]) -> str:
    # VOC is 1-based inclusive: 0-based continuous [x1, x2] is xmin = x1 + 1, xmax = x2 (see voc.py).
    objs = "".join(
        f"  <object>\n    <name>{SHAPES_CLASSES[label]}</name>\n    <pose>Unspecified</pose>\n"
        f"    <truncated>0</truncated>\n    <difficult>0</difficult>\n    <bndbox>\n"
        f"      <xmin>{x1 + 1}</xmin>\n      <ymin>{y1 + 1}</ymin>\n      <xmax>{x2}</xmax>\n      <ymax>{y2}</ymax>\n"
        f"    </bndbox>\n  </object>\n"
        for label, (x1, y1, x2, y2) in objects
    )
    return (
        f"<annotation>\n  <folder>VOC2007</folder>\n  <filename>{filename}</filename>\n"
        f"  <source><database>litvision shapes</database></source>\n"
        f"  <size>\n    <width>{size}</width>\n    <height>{size}</height>\n    <depth>3</depth>\n  </size>\n"
        f"  <segmented>0</segmented>\n{objs}</annotation>\n"
    )


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def generate(
    out: str | Path,
    num_train: int = 512,
    num_val: int = 128,
    num_test: int = 128,
    image_size: int = 128,
    seed: int = 0,
    max_objects: int = 4,
) -> Path:
    """Write the dataset to `out` (replacing a previous shapes dataset there); returns `out`.

    Writes into a sibling temporary folder first and renames it, so an interrupted run never
    leaves a half-written dataset behind that looks complete.
    """
    from PIL import Image

    out = Path(out)
    params = _params(num_train, num_val, num_test, image_size, seed, max_objects)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    voc = tmp / "VOCdevkit" / "VOC2007"
    for sub in ("Annotations", "ImageSets/Main", "JPEGImages"):
        (voc / sub).mkdir(parents=True)
    (tmp / "coco" / "annotations").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    categories = [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(SHAPES_CLASSES)]
    ids: dict[str, list[str]] = {}
    index, ann_id = 0, 1
    for split, count in (("train", num_train), ("val", num_val), ("test", num_test)):
        ids[split] = []
        coco: dict[str, Any] = {"info": {"description": "litvision shapes", **params}, "images": [],
                                "annotations": [], "categories": categories}  # fmt: skip
        (tmp / "coco" / split).mkdir()
        for _ in range(count):
            index += 1
            stem = f"{index:06d}"
            image, objects = make_image(rng, image_size, max_objects)
            jpg = voc / "JPEGImages" / f"{stem}.jpg"
            Image.fromarray(image).save(jpg, quality=95)
            _link_or_copy(jpg, tmp / "coco" / split / jpg.name)
            (voc / "Annotations" / f"{stem}.xml").write_text(_voc_xml(jpg.name, image_size, objects))
            ids[split].append(stem)
            coco["images"].append(
                {"id": index, "file_name": jpg.name, "width": image_size, "height": image_size}
            )
            for label, (x1, y1, x2, y2) in objects:
                w, h = x2 - x1, y2 - y1
                coco["annotations"].append(
                    {"id": ann_id, "image_id": index, "category_id": label + 1, "bbox": [x1, y1, w, h],
                     "area": w * h, "iscrowd": 0}
                )  # fmt: skip
                ann_id += 1
        (tmp / "coco" / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))
    ids["trainval"] = ids["train"] + ids["val"]
    for split, stems in ids.items():
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{s}\n" for s in stems))
    (tmp / "meta.json").write_text(json.dumps(params, indent=2, sort_keys=True))
    if out.exists():
        _remove_previous(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, out)
    except OSError:
        # Another process (e.g. a second node's rank 0) finished first: keep its identical copy.
        shutil.rmtree(tmp, ignore_errors=True)
        if not (out / "meta.json").is_file() or json.loads((out / "meta.json").read_text()) != params:
            raise
    return out


def _params(
    num_train: int, num_val: int, num_test: int, image_size: int, seed: int, max_objects: int
) -> dict:
    return {
        "format_version": FORMAT_VERSION, "num_train": int(num_train), "num_val": int(num_val),
        "num_test": int(num_test), "image_size": int(image_size), "seed": int(seed),
        "max_objects": int(max_objects), "classes": list(SHAPES_CLASSES),
    }  # fmt: skip


def _remove_previous(out: Path) -> None:
    from litvision.errors import UserError

    if not (out / "meta.json").is_file():
        raise UserError(
            f"{out} exists and is not a litvision shapes dataset (no meta.json); choose another data.root "
            "or move that folder away."
        )
    shutil.rmtree(out)


def ensure(out: str | Path, **kwargs: Any) -> Path:
    """Generate the dataset at `out` unless one with the same parameters is already there."""
    out = Path(out)
    kw = {
        k: kwargs[k]
        for k in ("num_train", "num_val", "num_test", "image_size", "seed", "max_objects")
        if k in kwargs
    }
    defaults = {
        "num_train": 512,
        "num_val": 128,
        "num_test": 128,
        "image_size": 128,
        "seed": 0,
        "max_objects": 4,
    }
    wanted = _params(**{**defaults, **kw})
    meta = out / "meta.json"
    if meta.is_file():
        try:
            if json.loads(meta.read_text()) == wanted:
                return out
        except json.JSONDecodeError:
            pass
    from litvision.utils.warn import tell_user

    params = {**defaults, **kw}
    n = params["num_train"] + params["num_val"] + params["num_test"]
    tell_user(log, f"generating the shapes dataset ({n} images, {params['image_size']} px) in {out}")
    return generate(out, **params)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m litvision.data.datasets.shapes",
        description="Write the synthetic shapes detection dataset.",
    )
    parser.add_argument(
        "--out", required=True, help="folder to write (replaced if it holds a shapes dataset)"
    )
    parser.add_argument("--num-train", type=int, default=512)
    parser.add_argument("--num-val", type=int, default=128)
    parser.add_argument("--num-test", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=128, help="square side in pixels")
    parser.add_argument("--max-objects", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from litvision.errors import guarded

    out = guarded(
        generate,
        args.out,
        args.num_train,
        args.num_val,
        args.num_test,
        args.image_size,
        args.seed,
        args.max_objects,
    )
    total = args.num_train + args.num_val + args.num_test
    print(f"Wrote {total} shapes images ({args.image_size} px) as VOC XML and COCO JSON to {out}")


if __name__ == "__main__":
    main()
