"""The small-data detection recipe on real images: `det_small_shapes` on a VOC folder made here.

    python -m bench det_real            # ~5 min on 2 cores: the folder, then two trainings

No photographs can be downloaded on the project's machines, so the folder is made from the real
images that ship inside the installed packages: handwritten digits (scikit-learn's `load_digits`,
1,797 scans of real handwriting from UCI's "Optical Recognition of Handwritten Digits", 8x8 px) pasted,
scaled to 20-40 px, onto crops of real photographs (scikit-learn's `china.jpg` and `flower.jpg`,
matplotlib's `grace_hopper.jpg`). Each 128 px image holds 1-3 digits; the boxes are the digits' ink
(their non-zero pixels), written as Pascal VOC XML (1-based inclusive pixels) in a VOCdevkit/VOC2007
layout with train/val/test lists, and read back by litvision's own VOC reader (`data=voc`). Ten
classes, 512 / 128 / 128 images.

`det_small_shapes` trains on it as on the shapes (same recipe, seed 42, through the real CLI), with
two data settings the digits ask for: no horizontal flip (a mirrored digit is another symbol) and no
VOC scale jitter (the shapes have none). The result file holds the test mAP@0.5, mAP and wall time,
and `yolov1_shapes`' on the same folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SPLITS = {"train": 512, "val": 128, "test": 128}
SIZE = 128


def _photos() -> list[Any]:
    import matplotlib
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = [np.asarray(im) for im in load_sample_images().images]
    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    photos.append(np.asarray(Image.open(hopper).convert("RGB")))
    return photos


def write_digits_voc(root: Path, seed: int = 0) -> Path:
    """The VOC2007 folder described in the module docstring, under `root`; returns `root`."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    digits = load_digits()
    inks, labels = digits.images / 16.0, digits.target
    photos = _photos()
    base = root / "VOCdevkit" / "VOC2007"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    n = 0
    for split, count in SPLITS.items():
        stems = []
        for _ in range(count):
            photo = photos[rng.integers(len(photos))]
            side = int(rng.integers(160, min(photo.shape[:2])))
            y, x = rng.integers(0, photo.shape[0] - side + 1), rng.integers(0, photo.shape[1] - side + 1)
            crop = Image.fromarray(photo[y : y + side, x : x + side]).resize((SIZE, SIZE), Image.BILINEAR)
            canvas = np.asarray(crop, dtype=np.float32)
            objects: list[tuple[str, list[int]]] = []
            taken = np.zeros((SIZE, SIZE), dtype=bool)
            for _ in range(int(rng.integers(1, 4))):
                k = int(rng.integers(len(labels)))
                s = int(rng.integers(20, 41))
                ink = np.asarray(
                    Image.fromarray((inks[k] * 255).astype(np.uint8)).resize((s, s), Image.BILINEAR)
                )
                x0, y0 = int(rng.integers(0, SIZE - s)), int(rng.integers(0, SIZE - s))
                if taken[y0 : y0 + s, x0 : x0 + s].any():
                    continue  # no overlaps: each box is one digit
                taken[y0 : y0 + s, x0 : x0 + s] = True
                alpha = (ink / 255.0)[..., None]
                colour = rng.choice([0.0, 255.0]) if rng.random() < 0.5 else rng.integers(0, 256, 3)
                region = canvas[y0 : y0 + s, x0 : x0 + s]
                canvas[y0 : y0 + s, x0 : x0 + s] = region * (1 - alpha) + alpha * np.asarray(
                    colour, np.float32
                )
                ys, xs = np.nonzero(ink > 32)
                if len(xs) == 0:
                    continue
                # VOC: 1-based inclusive pixel coordinates.
                box = [
                    x0 + int(xs.min()) + 1,
                    y0 + int(ys.min()) + 1,
                    x0 + int(xs.max()) + 1,
                    y0 + int(ys.max()) + 1,
                ]
                objects.append((CLASSES[int(labels[k])], box))
            if not objects:
                continue
            stem = f"{n:06d}"
            n += 1
            Image.fromarray(canvas.clip(0, 255).astype(np.uint8)).save(
                base / "JPEGImages" / f"{stem}.jpg", quality=95
            )
            (base / "Annotations" / f"{stem}.xml").write_text(_xml(f"{stem}.jpg", objects))
            stems.append(stem)
        (base / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{s}\n" for s in stems))
    return root


def _xml(filename: str, objects: list[tuple[str, list[int]]]) -> str:
    body = "".join(
        f"  <object>\n    <name>{name}</name>\n    <difficult>0</difficult>\n    <bndbox>\n"
        f"      <xmin>{b[0]}</xmin>\n      <ymin>{b[1]}</ymin>\n      <xmax>{b[2]}</xmax>\n      <ymax>{b[3]}</ymax>\n"
        "    </bndbox>\n  </object>\n"
        for name, b in objects
    )
    return (
        f"<annotation>\n  <folder>VOC2007</folder>\n  <filename>{filename}</filename>\n"
        f"  <size>\n    <width>{SIZE}</width>\n    <height>{SIZE}</height>\n    <depth>3</depth>\n  </size>\n"
        f"{body}</annotation>\n"
    )


def train(root: Path, runs: Path, experiment: str = "det_small_shapes") -> dict[str, Any]:
    """`litvision fit experiment=<experiment>` on the folder through `data=voc`; its summary."""
    args = [
        sys.executable, "-m", "litvision", "fit", f"experiment={experiment}", "data=voc", f"data.root={root}",
        "data.year=2007", "data.splits={train:[2007/train],val:[2007/val],test:[2007/test]}",
        f"data.num_classes={len(CLASSES)}", f"data.class_names=[{','.join(CLASSES)}]", f"data.image_size={SIZE}",
        "data.augment.scale_range=null", "data.augment.hflip=0.0", f"paths.runs_dir={runs}", "logger=csv", "callbacks.rich_progress_bar=null",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    started = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{experiment} on the digits folder failed:\n{proc.stderr[-3000:]}")
    (summary,) = runs.glob(f"{experiment}/*/summary.json")
    data = json.loads(summary.read_text())
    return {
        "experiment": experiment,
        "test_map_50": round(float(data["test"]["test/map_50"]), 4),
        "test_map": round(float(data["test"]["test/map"]), 4),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="det_real-") as name:
        tmp = Path(name)
        started = time.perf_counter()
        root = write_digits_voc(tmp / "digits_voc")
        made = round(time.perf_counter() - started, 1)
        counts = {
            split: len((root / "VOCdevkit/VOC2007/ImageSets/Main" / f"{split}.txt").read_text().split())
            for split in SPLITS
        }
        return {
            "images": counts,
            "classes": len(CLASSES),
            "generate_s": made,
            "det_small": train(root, tmp / "runs"),
            # The baseline, as on the shapes: the same folder and data settings.
            "yolov1_shapes": train(root, tmp / "runs", "yolov1_shapes"),
        }
