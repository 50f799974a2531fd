"""predict: a trained checkpoint on a folder of images: top-k classes, or boxes drawn and as COCO JSON.

    litvision predict experiment=digits_cnn ckpt_path=runs/digits_cnn/<stamp>/checkpoints/last.ckpt input=photos/
    litvision predict experiment=yolov1_shapes ckpt_path=<ckpt> input=<folder> score_thresh=0.3

`run_predict(cfg, run_dir)` is the command's work inside the run lifecycle, which composes and
checks the config, makes `run_dir` and writes the config and `summary.json` (from the fields
returned here). The task is rebuilt from the checkpoint alone, read by the one safe loader: its
plain hyper-parameters give the network (pretrained-weight keys off, nothing is downloaded), its
`datamodule_hyper_parameters` give the images' preprocessing (the eval resize, crop, channels and
normalisation the model was trained with), its state dict the weights.

Classification (`top_k` best classes per image, probabilities from the softmax):
  predictions.csv   file, class_1, prob_1, ..., class_k, prob_k (one row per image)
  predictions.json  [{"file", "top_k": [{"class", "index", "prob"}, ...]}, ...]
Detection (boxes scoring at least `score_thresh`, 0.3 by default; when none does, one line names
the best box's score and a value of `score_thresh` to try; `agnostic_nms=true` keeps one box per
object whatever its class, torchvision.ops.nms over all classes at `nms_thresh`):
  images/<name>.png predicted boxes drawn with class names and scores, the threshold stated above
                    the image ("no prediction above 0.3, best 0.16" when none passes)
  detections.json   COCO results (image_id, category_id, bbox [x, y, w, h], score); category_id is
                    the dataset's own id, recorded in the checkpoint at training time: COCO's from
                    its annotation file (1..90 with gaps), 1..C in class order for VOC, YOLO and
                    the shapes (see DetectionDataModule.category_ids); summary.json lists them
  images.json       image id -> file name; ids are the file stems when all are numbers (COCO file
                    names), else positions in sorted order

Bad images never stop the run unless asked: a file that cannot be decoded is skipped with a
warning, and one whose header says it has more than `max_pixels` pixels is refused before any
pixel is decoded (a 20000x20000 PNG would take 4.8 GB as float RGB). `on_bad_image=stop` turns
either into one error line instead. Skipped files and why are listed in the summary.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from litvision.errors import UserError
from litvision.lifecycle.spec import Command
from litvision.tasks.restore import inference_transform, load_task

log = logging.getLogger(__name__)

ON_BAD_IMAGE = ("skip", "stop")


# -- settings and inputs -----------------------------------------------------------------------
def list_images(folder: str | Path) -> list[Path]:
    """The image files directly inside `folder`, sorted; a missing or empty folder is one line."""
    from litvision.data.pipeline.decode import IMG_EXTENSIONS

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserError(
            f"input={folder} is not a folder; pass a folder of images, e.g. input=data/my_photos."
        )
    files = sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMG_EXTENSIONS and p.is_file() and not p.name.startswith(".")
    )
    if not files:
        raise UserError(
            f"input={folder} holds no images ({', '.join(IMG_EXTENSIONS)}); point it at a folder of images."
        )
    return files


def image_ids(files: list[Path]) -> list[int]:
    stems = [p.stem for p in files]
    if all(s.isdigit() for s in stems) and len(set(map(int, stems))) == len(stems):
        return [int(s) for s in stems]
    return list(range(len(files)))


def _positive_int(cfg: DictConfig, key: str) -> int:
    value = cfg.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{key}={value!r} must be a positive whole number (e.g. {key}=4).")
    return value


def check_predict_config(cfg: DictConfig) -> None:
    """The predict keys' types and ranges, the checkpoint's existence and the input folder, checked
    without loading anything: the lifecycle can call this before it makes a run folder."""
    ckpt = cfg.get("ckpt_path")
    if ckpt in (None, "", "null"):
        raise UserError(
            "predict needs a checkpoint: ckpt_path=<path/to.ckpt> (make predict ... CKPT=<path>)."
        )
    if not Path(str(ckpt)).expanduser().is_file():
        raise UserError(f"Checkpoint not found: {ckpt}; pass an existing .ckpt file as ckpt_path=.")
    if cfg.get("input") in (None, "", "null"):
        raise UserError("predict needs a folder of images: input=<folder> (make predict ... INPUT=<folder>).")
    list_images(cfg.input)
    for key in ("batch_size", "top_k", "max_pixels"):
        _positive_int(cfg, key)
    if cfg.get("on_bad_image") not in ON_BAD_IMAGE:
        raise UserError(
            f"on_bad_image={cfg.get('on_bad_image')!r} is not one of {', '.join(ON_BAD_IMAGE)}: "
            "skip (warn and go on) or stop (one error line)."
        )
    thresh = cfg.get("score_thresh")
    if isinstance(thresh, bool) or not isinstance(thresh, (int, float)) or not 0.0 <= thresh <= 1.0:
        raise UserError(f"score_thresh={thresh!r} must be a number in [0, 1] (e.g. score_thresh=0.3).")
    if not isinstance(cfg.get("agnostic_nms", False), bool):
        raise UserError(
            f"agnostic_nms={cfg.get('agnostic_nms')!r} must be true or false (e.g. agnostic_nms=true)."
        )


# -- images ---------------------------------------------------------------------------------------
class _Refused(Exception):
    """An input image predict leaves out: `reason` says why."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(reason)
        self.reason, self.fix = reason, fix


@contextmanager
def _pil_pixel_limit(max_pixels: int) -> Iterator[None]:
    # Our own limit (max_pixels) decides, with its own message; PIL's decompression-bomb check
    # would otherwise refuse (or warn) first, at its own fixed limit.
    from PIL import Image

    before = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = before


def read_checked(path: Path, max_pixels: int) -> Any:
    """Decode `path` to a uint8 RGB tensor (3, H, W) after checking its header: size within
    `max_pixels`, a format PIL knows, no truncation. Raises `_Refused` otherwise."""
    from PIL import Image

    from litvision.data.pipeline.decode import UnreadableImage, check_image, read_rgb

    before = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # the header only: nothing is decoded here
    try:
        with Image.open(path) as im:
            width, height = im.size
    except Exception as e:  # noqa: BLE001 - any failure to read a header means "not an image we can read"
        raise _Refused(
            f"it is not an image that can be read ({type(e).__name__}: {str(e)[:120]})",
            "replace or remove the file",
        ) from None
    finally:
        Image.MAX_IMAGE_PIXELS = before
    if width * height > max_pixels:
        raise _Refused(
            f"it is {width}x{height} = {width * height:,} pixels, over max_pixels={max_pixels:,}",
            f"resize it, or raise the limit with max_pixels={width * height}",
        )
    with _pil_pixel_limit(max_pixels):
        why = check_image(path)
        if why is not None:
            raise _Refused(why, "replace or remove the file")
        try:
            return read_rgb(path)
        except UnreadableImage as e:
            raise _Refused(f"it cannot be decoded ({e.reason})", "replace or remove the file") from None


def _readable(
    files: list[Path], max_pixels: int, on_bad: str, skipped: list[dict[str, str]]
) -> Iterator[tuple[Path, Any]]:
    """(path, uint8 image) for each file that reads; the others are warned about and listed in
    `skipped`, or (on_bad_image=stop) stop the run in one line."""
    from litvision.utils.warn import warn_user

    for path in files:
        try:
            image = read_checked(path, max_pixels)
        except _Refused as r:
            if on_bad == "stop":
                raise UserError(
                    f"Image {path}: {r.reason}; {r.fix}, or set on_bad_image=skip to leave such files out."
                ) from None
            warn_user(log, f"Skipping image {path}: {r.reason} (on_bad_image=skip).")
            skipped.append({"file": str(path), "reason": r.reason})
            continue
        yield path, image


def _batches(items: Iterator[tuple[Path, Any]], size: int) -> Iterator[list[tuple[Path, Any]]]:
    batch: list[tuple[Path, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# -- the two kinds of model -----------------------------------------------------------------------
def _predict_classification(
    task: Any,
    transform: Callable[[Any], Any],
    items: Iterator[tuple[Path, Any]],
    cfg: DictConfig,
    run_dir: Path,
) -> dict[str, Any]:
    import torch

    from litvision.tasks.options import check_tta
    from litvision.tasks.tta import predict_probabilities

    tta = cfg.get("test_tta") or "none"  # hflip: the mean of the image's and its mirror's softmax
    check_tta(tta)
    k = min(int(cfg.top_k), task.num_classes)
    rows: list[dict[str, Any]] = []
    with torch.inference_mode():
        for batch in _batches(items, int(cfg.batch_size)):
            x = torch.stack([transform(image) for _, image in batch])
            probs, idx = predict_probabilities(task, x, tta).topk(k, dim=-1)
            for (path, _), p, i in zip(batch, probs.tolist(), idx.tolist(), strict=True):
                top = [
                    {"class": task.class_names[c], "index": c, "prob": round(q, 6)}
                    for q, c in zip(p, i, strict=True)
                ]
                rows.append({"file": path.name, "top_k": top})
    (run_dir / "predictions.json").write_text(json.dumps(rows, indent=1))
    with open(run_dir / "predictions.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", *(f"{c}_{r}" for r in range(1, k + 1) for c in ("class", "prob"))])
        for row in rows:
            writer.writerow([row["file"], *(v for t in row["top_k"] for v in (t["class"], t["prob"]))])
    print(f"top-{k} classes of {len(rows)} images -> {run_dir / 'predictions.csv'}")
    return {"images": len(rows), "top_k": k, "test_tta": tta, "predictions": "predictions.csv"}


def _predict_detection(
    task: Any, items: Iterator[tuple[Path, Any]], files: list[Path], cfg: DictConfig, run_dir: Path
) -> dict[str, Any]:
    import torch
    from torchvision.io import write_png

    from litvision.metrics.detection import coco_results
    from litvision.tasks.detection import draw_detections

    net = task.net
    # YOLOv1 (and torchvision's RetinaNet, FCOS, SSD) read these at decoding time. The net's own
    # score threshold is only ever lowered: boxes between the two still tell the "0 detections" line
    # how far off the best box is, and the filter below applies score_thresh (NMS never lets a
    # lower-scoring box remove a higher one, so the boxes kept are the same).
    if isinstance(getattr(net, "score_thresh", None), (int, float)):
        net.score_thresh = min(float(net.score_thresh), float(cfg.score_thresh))
    if cfg.get("nms_thresh") is not None and hasattr(net, "nms_thresh"):
        net.nms_thresh = float(cfg.nms_thresh)
    agnostic_iou = None
    if cfg.get("agnostic_nms"):
        own = getattr(net, "nms_thresh", None)
        agnostic_iou = float(cfg.nms_thresh if cfg.get("nms_thresh") is not None else own if own else 0.5)
    out_images = run_dir / "images"
    out_images.mkdir(parents=True, exist_ok=True)
    # Ids over every listed file, so that an image's id does not depend on which others were skipped.
    id_of = dict(zip(files, image_ids(files), strict=True))
    thresh = float(cfg.score_thresh)
    predictions, ids, done = [], [], []
    best = None  # the highest score of any box the model returned, kept or not
    with torch.inference_mode():
        for batch in _batches(items, int(cfg.batch_size)):
            images = [image.float() / 255.0 for _, image in batch]
            for (path, _), img, pred in zip(batch, images, task(images), strict=True):
                if len(pred["scores"]):
                    top = float(pred["scores"].max())
                    best = top if best is None else max(best, top)
                top = float(pred["scores"].max()) if len(pred["scores"]) else None
                pred = {k: v[pred["scores"] >= thresh] for k, v in pred.items()}
                if agnostic_iou is not None:
                    pred = class_agnostic_nms(pred, agnostic_iou)
                predictions.append(pred)
                ids.append(id_of[path])
                done.append(path)
                drawn = draw_detections(img, pred, task.class_names, score_thresh=thresh, best=top)
                write_png(drawn, str(out_images / f"{path.stem}.png"))
    category_ids = _category_ids(task)
    results = coco_results(predictions, ids, category_ids)
    (run_dir / "detections.json").write_text(json.dumps(results))
    (run_dir / "images.json").write_text(
        json.dumps([{"id": id_of[p], "file_name": p.name} for p in done], indent=1)
    )
    print(f"{len(results)} detections scoring >= score_thresh={thresh:g} in {len(done)} images -> {run_dir}")
    if not results and done:
        print(no_detections_line(thresh, best))
    return {
        "images": len(done),
        "detections": len(results),
        "score_thresh": thresh,
        "best_score": best,
        # label -> the category id written to detections.json, with its name (COCO's "categories").
        "categories": [
            {"id": int(c), "name": n} for c, n in zip(category_ids, task.class_names, strict=False)
        ],
    }


def class_agnostic_nms(pred: Mapping[str, Any], iou_thresh: float) -> dict[str, Any]:
    """Non-maximum suppression over all classes at once (torchvision.ops.nms, ignoring labels): of
    boxes overlapping by more than `iou_thresh`, whatever their classes, only the best-scoring stays.
    The per-class NMS of the detectors keeps one box per class on the same object."""
    from torchvision.ops import nms

    keep = nms(pred["boxes"].float(), pred["scores"].float(), iou_thresh)
    return {k: v[keep] for k, v in pred.items()}


def _category_ids(task: Any) -> list[int]:
    """The dataset's own category id of each label, as recorded in the checkpoint."""
    from litvision.utils.warn import warn_user

    if task.category_ids is not None and len(task.category_ids) == task.num_classes:
        return [int(c) for c in task.category_ids]
    # A checkpoint from before the ids were recorded: 1..C is what the data modules give every
    # dataset without ids of its own (litvision.data.detection); COCO's gapped ids are lost.
    warn_user(
        log,
        "The checkpoint records no category ids: detections.json uses 1..C in class order; "
        "for COCO data retrain (or re-save) the checkpoint so results carry the dataset's own ids.",
    )
    return list(range(1, task.num_classes + 1))


def no_detections_line(thresh: float, best: float | None) -> str:
    """What to do when no box reaches the threshold: the key to lower and a value to try."""
    if best is None:
        return (
            f"0 detections: the model returned no boxes at all (score_thresh={thresh:g} was not the "
            "cause); check the checkpoint was trained, and the model's own model.net.score_thresh."
        )
    suggest = 0.05 if best >= 0.05 else math.floor(best * 1000) / 1000
    return (
        f"0 detections above score_thresh={thresh:g} (the best box scored {best:.3f}); "
        f'lower it with score_thresh={suggest:g} (make predict ... ARGS="score_thresh={suggest:g}").'
    )


def run_predict(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Predict on every image of `cfg.input` with `cfg.ckpt_path`; write the outputs into `run_dir`
    and return the summary's fields (the lifecycle adds timing and git facts and writes it)."""
    from litvision.utils.safe_load import check_compatible, load_checkpoint

    check_predict_config(cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = Path(str(cfg.ckpt_path)).expanduser()
    ckpt = load_checkpoint(path)
    check_compatible(ckpt, cfg, path)
    task, kind = load_task(ckpt, path, cfg)
    transform = inference_transform(ckpt, cfg, path) if kind == "classification" else None
    files = list_images(cfg.input)
    skipped: list[dict[str, str]] = []
    items = _readable(files, int(cfg.max_pixels), str(cfg.on_bad_image), skipped)
    if kind == "classification":
        facts = _predict_classification(task, transform, items, cfg, run_dir)
    else:
        facts = _predict_detection(task, items, files, cfg, run_dir)
    if skipped:
        print(f"skipped {len(skipped)} of {len(files)} images (listed in summary.json under 'skipped')")
    return {
        "experiment": cfg.get("name"),
        "task": "predict",
        "model_task": kind,
        "run_dir": str(run_dir),
        "checkpoint": str(path.resolve()),
        "input": str(Path(str(cfg.input)).expanduser().resolve()),
        **facts,
        "images_skipped": len(skipped),
        "skipped": skipped,
        "class_names": list(task.class_names),
    }


def run(session: Any) -> dict[str, Any]:
    """The lifecycle's entry: predict into the session's run folder."""
    return run_predict(session.cfg, session.run_dir)


#: `litvision predict`: runs/<experiment>/predict/<stamp>/; the checkpoint is checked by `load_task`.
COMMAND = Command(
    "predict",
    "predict",
    run,
    needs_checkpoint=True,
    run_dir="${paths.runs_dir}/${name}/predict/${now:%Y-%m-%d_%H-%M-%S-%f}",
    precheck=check_predict_config,
    check_checkpoint=False,
)
