"""Set-up cost at scale: image folders of 10k-1M files, COCO-2017-train-sized annotations, loader-worker memory.

    python -m bench setup_scale            # 10k and 100k files, COCO at 10/50/100%; ~10 min on 2 cores
    python -m bench setup_scale --small    # a few hundred files, COCO at 1% (what the test suite runs)
    BENCH_SETUP_SCALE_1M=1 python -m bench setup_scale   # adds the 1M-file folder (~6 GB, ~20 min)
    BENCH_SETUP_SCALE_FOLDERS=1000000 BENCH_SETUP_SCALE_KEEP=/data/scale python -m bench setup_scale
                                           # that size alone, into the last full run's results; the
                                           # folder is generated once into KEEP and reused

Everything is generated into a temporary folder and measured in fresh processes (peak RSS is the
process's `ru_maxrss`):
- **Image folder** of N tiny real PNGs (8x8 RGB, random pixels, 10 class folders): seconds from
  composing `data=image_folder` to the first training batch, and peak RSS, on a first run (empty
  file-check cache) and a second run over the unchanged folder; the second run also counts the image
  files opened during set-up (a spy on `open`, `PIL.Image.open` and torchvision's `read_file`; it sees this
  process only: a first run computes its checks in forked workers, whose CPU is counted in `cpu_s`).
- **COCO**: an instances file with 10/50/100% of COCO-2017-train's 118,287 images and 860,001 boxes
  (synthetic boxes, the real schema: a polygon per box, area, iscrowd, the image fields), indexed by
  litvision's `COCODetection` (first run, and a second run that reads its cached arrays) and, in the
  same run, by pycocotools' `COCO(file)`: seconds and peak RSS, the imports done before the clock.
  The images themselves are not written: this measures the annotation index.
- **Worker memory**: 4 DataLoader workers iterate one epoch of a 100k-record image folder; the summed
  RSS and USS (private memory, `/proc/<pid>/smaps_rollup`) of the workers after the first and last
  batch. RSS counts pages shared with the parent too, so copy-on-read (PyTorch issue 13246) shows in
  USS. Measured for litvision's records (`PathTable`) and, as the baseline, the same dataset holding
  a Python list of `Path`s (how `FileImages` held them before).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
COCO_IMAGES, COCO_BOXES = 118_287, 860_001
FULL = {"folders": [10_000, 100_000], "coco": [0.1, 0.5, 1.0], "worker_records": 100_000, "workers": 4}
SMALL = {"folders": [120], "coco": [0.005], "worker_records": 120, "workers": 2}
MILLION = 1_000_000


# -- generating the data -------------------------------------------------------------------------
def write_folder(root: Path, n: int, classes: int = 10) -> None:
    """n 8x8 RGB PNGs with random pixels (distinct images), spread over `classes` class folders."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class_{c}").mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, (min(n, 4096), 8, 8, 3), dtype=np.uint8)
    for i in range(n):
        a = pixels[i % len(pixels)].copy()
        a[0, 0] = (i & 255, (i >> 8) & 255, (i >> 16) & 255)  # distinct even past 4096
        Image.fromarray(a).save(root / f"class_{i % classes}" / f"{i:07d}.png", compress_level=1)


def write_coco(path: Path, fraction: float) -> tuple[int, int]:
    """A COCO instances file with `fraction` of COCO-2017-train's images and boxes; (images, boxes)."""
    import numpy as np

    from litvision.data.datasets.coco import COCO_2017_CATEGORIES

    n_img, n_box = int(COCO_IMAGES * fraction), int(COCO_BOXES * fraction)
    rng = np.random.default_rng(0)
    wh = rng.integers(240, 641, (n_img, 2))
    owner = np.sort(rng.integers(0, n_img, n_box))
    cats = np.array(list(COCO_2017_CATEGORIES))[rng.integers(0, 80, n_box)]
    x, y = rng.random(n_box) * wh[owner, 0] * 0.8, rng.random(n_box) * wh[owner, 1] * 0.8
    w = np.maximum(1.0, rng.random(n_box) * (wh[owner, 0] - x))
    h = np.maximum(1.0, rng.random(n_box) * (wh[owner, 1] - y))
    images = [
        {"license": 1, "file_name": f"{i + 1:012d}.jpg", "coco_url": f"http://images.cocodataset.org/train2017/{i + 1:012d}.jpg",
         "height": int(wh[i, 1]), "width": int(wh[i, 0]), "date_captured": "2013-11-14 17:02:52",
         "flickr_url": "http://farm4.staticflickr.com/x.jpg", "id": i + 1}
        for i in range(n_img)
    ]  # fmt: skip
    anns = []
    for j in range(n_box):
        x0, y0, x1, y1 = round(x[j], 2), round(y[j], 2), round(x[j] + w[j], 2), round(y[j] + h[j], 2)
        anns.append(
            {"segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]], "area": round(w[j] * h[j], 2), "iscrowd": 0,
             "image_id": int(owner[j]) + 1, "bbox": [x0, y0, round(w[j], 2), round(h[j], 2)],
             "category_id": int(cats[j]), "id": j + 1}
        )  # fmt: skip
    categories = [{"supercategory": "thing", "id": k, "name": v} for k, v in COCO_2017_CATEGORIES.items()]
    data = {"info": {"description": "synthetic, COCO 2017 schema"}, "licenses": [], "images": images,
            "annotations": anns, "categories": categories}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return n_img, n_box


# -- what each child process measures -----------------------------------------------------------------
def _peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: unlike `ru_maxrss` it does not carry the forking parent's peak
    across `exec`)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


@contextlib.contextmanager
def open_spy() -> Iterator[list[str]]:
    """The image files opened inside the block (builtins.open, PIL.Image.open, torchvision's read_file)."""
    import builtins

    import PIL.Image
    import torchvision.io

    from litvision.data.pipeline import decode

    opened: list[str] = []

    def wrap(fn: Any) -> Any:
        def spy(p: Any, *a: Any, **k: Any) -> Any:
            if isinstance(p, (str, os.PathLike)) and str(p).lower().endswith(decode.IMG_EXTENSIONS):
                opened.append(str(p))
            return fn(p, *a, **k)

        return spy

    saved = builtins.open, PIL.Image.open, torchvision.io.read_file
    builtins.open, PIL.Image.open, torchvision.io.read_file = (wrap(f) for f in saved)
    try:
        yield opened
    finally:
        builtins.open, PIL.Image.open, torchvision.io.read_file = saved


def child_folder(root: str, runs: str, workers: int, spy: bool) -> dict[str, Any]:
    """Compose `data=image_folder`, set up, take the first training batch: seconds, peak RSS, opens."""
    # Imported before the clock starts: what is measured is the set-up, not the interpreter's start.
    import resource

    import litvision.data.datasets.image_folder  # noqa: F401
    from litvision.build import build_datamodule
    from litvision.config import compose

    def children_cpu() -> float:
        # The first run's checks run in forked workers (pipeline/filecache.compute_all): their CPU too.
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    t0, c0, k0 = time.perf_counter(), time.process_time(), children_cpu()
    cfg = compose(
        ["data=image_folder", f"data.root={root}", "data.batch_size=32", f"data.num_workers={workers}",
         f"paths.runs_dir={runs}"]
    )  # fmt: skip
    dm = build_datamodule(cfg)
    t_setup = time.perf_counter()
    with open_spy() as opened:
        dm.setup("fit")
    setup_s = time.perf_counter() - t_setup
    next(iter(dm.train_dataloader()))
    out = {
        "seconds_to_first_batch": round(time.perf_counter() - t0, 2),
        # CPU seconds of this process: on a machine shared with other jobs, wall time varies with their load.
        "cpu_s_to_first_batch": round(time.process_time() - c0 + children_cpu() - k0, 2),
        "setup_s": round(setup_s, 2),
        "duplicate_check_s": dm.data_checks.get("duplicates", {}).get("seconds"),
        "images": sum(len(d) for d in dm.datasets.values()),
        "peak_rss_mb": _peak_rss_mb(),
    }
    if spy:
        out["image_files_opened_in_setup"] = len(opened)
    return out


def _proc_mb(pid: int) -> tuple[float, float]:
    """(RSS, USS) of a process in MB, from smaps_rollup."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                fields[parts[0][:-1]] = int(parts[1])
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return fields.get("Rss", 0) / 1024, uss / 1024


def _children() -> list[int]:
    pid = os.getpid()
    kids: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            kids += [int(x) for x in f.read().split()]
    return kids


def child_workers(root: str, runs: str, records: int, workers: int, as_list: bool) -> dict[str, Any]:
    """Summed RSS/USS of the loader workers after the first and the last batch of one epoch."""
    import numpy as np
    import torch

    from litvision.data.datasets.image_folder import scan_folder
    from litvision.data.datasets.sources import FileImages, ImageSubset
    from litvision.data.transforms.classification import TransformConfig, eval_transform

    _, paths, labels = scan_folder(Path(root))
    source = FileImages(paths[:records], labels[:records])
    if as_list:  # the baseline: a Python list of Path objects, as FileImages held them before
        source.paths = [Path(p) for p in paths[:records]]
    tf = eval_transform(TransformConfig(image_size=8, resize_size=8, mean=(0.5,) * 3, std=(0.5,) * 3))
    ds = ImageSubset(source, np.arange(len(source)), tf)
    loader = torch.utils.data.DataLoader(ds, batch_size=256, num_workers=workers, shuffle=True)
    start = end = (0.0, 0.0)
    for n, _ in enumerate(loader, start=1):
        sums = [_proc_mb(p) for p in _children()]
        now = (sum(s[0] for s in sums), sum(s[1] for s in sums))
        if n == 1:
            start = now
        end = now
    return {
        "records": len(ds),
        "workers": workers,
        "rss_mb_start": round(start[0], 1),
        "rss_mb_end": round(end[0], 1),
        "rss_growth": round(end[0] / start[0] - 1, 3) if start[0] else None,
        "uss_mb_start": round(start[1], 1),
        "uss_mb_end": round(end[1], 1),
        "uss_growth": round(end[1] / start[1] - 1, 3) if start[1] else None,
    }


def child_coco(ann: str, which: str) -> dict[str, Any]:
    """Seconds and peak RSS of indexing one COCO file (imports done before the clock starts)."""
    import contextlib
    import io

    from pycocotools.coco import COCO

    from litvision.data.datasets.coco import COCODetection

    base_mb = _peak_rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    if which == "pycocotools":
        with contextlib.redirect_stdout(io.StringIO()):
            index: Any = COCO(ann)
    else:
        index = COCODetection(Path(ann).parent / "images", ann)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _peak_rss_mb()
    del index
    # Both processes import the same modules (torch included): the index's own peak is the difference.
    return {
        "seconds": round(seconds, 2),
        "cpu_s": round(cpu, 2),
        "peak_rss_mb": peak,
        "peak_rss_over_imports_mb": round(peak - base_mb, 1),
    }


# -- the parent ----------------------------------------------------------------------------------------
IN_PROCESS = False  # --small: the children run in this process (fast; peak RSS then means nothing)


def _child(call: str, env: dict[str, str] | None = None, timeout: float = 3600) -> dict[str, Any]:
    """Run `bench.bench_setup_scale.<call>` in a fresh interpreter; its JSON result."""
    if IN_PROCESS:
        saved = {k: os.environ.get(k) for k in env or {}}
        os.environ.update(env or {})
        try:
            return json.loads(json.dumps(eval(call, globals())))  # noqa: S307 - our own call strings
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    code = f"import json, bench.bench_setup_scale as b; print('RESULT', json.dumps(b.{call}))"
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), str(ROOT)) if p)
    proc = subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=timeout
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"bench child {call} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def _folder_case(tmp: Path, n: int, out: dict[str, Any], keep: Path | None = None) -> Path:
    """One folder size, first and second run. `keep`: generate the folder there (or reuse the one a
    previous bench left complete), so that a rerun of one size does not write a million files again."""
    root = (keep or tmp) / f"folder_{n}"
    done = root / ".complete"
    started = time.perf_counter()
    if not done.is_file():
        shutil.rmtree(root, ignore_errors=True)
        write_folder(root, n)
        if keep is not None:
            done.write_text(str(n))
    cache = {"LITVISION_CACHE_DIR": str(tmp / f"cache_{n}")}
    runs = str(tmp / "runs")
    row: dict[str, Any] = {"files": n, "generate_s": round(time.perf_counter() - started, 1)}
    row["first_run"] = _child(f"child_folder({str(root)!r}, {runs!r}, 0, False)", cache)
    row["second_run"] = _child(f"child_folder({str(root)!r}, {runs!r}, 0, True)", cache)
    row["second_over_first"] = round(
        row["second_run"]["seconds_to_first_batch"] / row["first_run"]["seconds_to_first_batch"], 3
    )
    row["files_opened_share"] = round(row["second_run"]["image_files_opened_in_setup"] / n, 4)
    out[str(n)] = row
    print(f"folder {n}: {row}", flush=True)
    return root


def _folders_only(sizes: list[int]) -> dict[str, Any]:
    """BENCH_SETUP_SCALE_FOLDERS=1000000: rerun those folder sizes alone (the 1M case takes its own
    window of an idle machine), into the results of the last full run; each rerun row has its date."""
    previous = ROOT / "bench" / "results" / "setup_scale.json"
    result = json.loads(previous.read_text()) if previous.is_file() else {}
    # The file's `date` becomes this rerun's: say when the rest was measured.
    earlier = result.get("rest_measured") or result.get("date")
    for key in ("benchmark", "date", "machine", "bench_wall_s"):
        result.pop(key, None)
    result["rest_measured"] = earlier
    result["rerun_folders"] = sizes
    result.setdefault("image_folder", {})
    keep = os.environ.get("BENCH_SETUP_SCALE_KEEP")
    with tempfile.TemporaryDirectory(prefix="setup_scale-") as name:
        for n in sizes:
            row: dict[str, Any] = {}
            _folder_case(Path(name), n, row, Path(keep) if keep else None)
            row[str(n)]["date"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            result["image_folder"][str(n)] = row[str(n)]
    return result


def run(small: bool = False) -> dict[str, Any]:
    global IN_PROCESS
    only = os.environ.get("BENCH_SETUP_SCALE_FOLDERS", "").strip()
    if only and not small:
        return _folders_only([int(v) for v in only.split(",")])
    sizes = SMALL if small else FULL
    IN_PROCESS = small
    result: dict[str, Any] = {"small": small, "image_folder": {}, "coco": {}, "worker_memory": {}}
    with tempfile.TemporaryDirectory(prefix="setup_scale-") as name:
        tmp = Path(name)
        worker_root = None
        for n in sizes["folders"]:
            root = _folder_case(tmp, n, result["image_folder"])
            if n >= sizes["worker_records"] and worker_root is None:
                worker_root = root
            elif n > sizes["worker_records"] * 2:
                shutil.rmtree(root)
        million = not small and os.environ.get("BENCH_SETUP_SCALE_1M") == "1"
        free_gb = shutil.disk_usage(tmp).free / 1e9
        if million and free_gb > 8:
            _folder_case(tmp, MILLION, result["image_folder"])
            shutil.rmtree(tmp / f"folder_{MILLION}")
        else:
            why = "set BENCH_SETUP_SCALE_1M=1" if not million else f"only {free_gb:.0f} GB free"
            result["image_folder"][str(MILLION)] = (
                f"skipped: {why} (needs ~6 GB of disk and ~20 min on 2 cores)"
            )
            print(f"folder {MILLION}: {result['image_folder'][str(MILLION)]}", flush=True)
        assert worker_root is not None
        runs = str(tmp / "runs")
        variants = [("litvision_records", False)] + ([] if small else [("list_of_paths_baseline", True)])
        for variant, as_list in variants:
            call = f"child_workers({str(worker_root)!r}, {runs!r}, {sizes['worker_records']}, {sizes['workers']}, {as_list})"
            result["worker_memory"][variant] = _child(call)
            print(f"workers {variant}: {result['worker_memory'][variant]}", flush=True)
        for fraction in sizes["coco"]:
            ann = tmp / "coco" / f"instances_{fraction}.json"
            n_img, n_box = write_coco(ann, fraction)
            row: dict[str, Any] = {
                "images": n_img,
                "boxes": n_box,
                "file_mb": round(ann.stat().st_size / 1e6, 1),
            }
            cache = {"LITVISION_CACHE_DIR": str(tmp / f"coco_cache_{fraction}")}
            row["litvision"] = _child(f"child_coco({str(ann)!r}, 'litvision')", cache)
            # The second run over the unchanged file reads the cached arrays (data/pipeline/filecache.py).
            row["litvision_second_run"] = _child(f"child_coco({str(ann)!r}, 'litvision')", cache)
            row["pycocotools"] = _child(f"child_coco({str(ann)!r}, 'pycocotools')")
            row["time_ratio"] = round(row["litvision"]["seconds"] / row["pycocotools"]["seconds"], 3)
            row["peak_rss_ratio"] = round(
                row["litvision"]["peak_rss_mb"] / row["pycocotools"]["peak_rss_mb"], 3
            )
            row["index_rss_ratio"] = round(
                row["litvision"]["peak_rss_over_imports_mb"]
                / max(row["pycocotools"]["peak_rss_over_imports_mb"], 0.1),
                3,
            )
            result["coco"][f"{fraction * 100:g}%"] = row
            print(f"coco {fraction * 100:g}%: {row}", flush=True)
            ann.unlink()
    return result
