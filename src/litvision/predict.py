"""Detect objects in a folder of images with a trained checkpoint; writes annotated images and COCO JSON.

    make predict EXP=yolov1_shapes CKPT=runs/yolov1_shapes/<stamp>/checkpoints/last.ckpt INPUT=photos/
    python -m litvision.predict experiment=yolov1_shapes ckpt_path=<ckpt> input=<folder> [score_thresh=0.3]

The run folder `runs/<experiment>/predict/<timestamp>/` gets `images/<name>.png` (predicted boxes
drawn with class names and scores), `detections.json` (COCO results: image_id, category_id,
bbox [x, y, w, h], score; category ids mapped back through the data's `category_ids` when it has
them), `images.json` (image id -> file name) and `summary.json`. Image ids are the file stem when it
is a number (COCO file names), else the position in sorted order.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from litvision.config import config_dir, project_root
from litvision.errors import UserError
from litvision.train import run_guarded

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserError(
            f"input={folder} is not a folder; pass a folder of images, e.g. input=data/my_photos."
        )
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise UserError(
            f"input={folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); point it at a folder of images."
        )
    return files


def image_ids(files: list[Path]) -> list[int]:
    stems = [p.stem for p in files]
    if all(s.isdigit() for s in stems) and len(set(map(int, stems))) == len(stems):
        return [int(s) for s in stems]
    return list(range(len(files)))


def load_task(ckpt_path: str | Path) -> Any:
    import torch

    from litvision.tasks.detection import DetectionTask

    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    hp = ckpt.get("hyper_parameters") or {}
    if "net" not in hp or "num_classes" not in hp:
        raise UserError(
            f"ckpt_path={ckpt_path} is not a litvision detection checkpoint (no net/num_classes)."
        )
    from litvision.models.weights import without_pretrained

    # The checkpoint has every tensor: rebuilding the model must not fetch pretrained weights.
    task = DetectionTask(**{**hp, "net": without_pretrained(hp["net"])})
    task.load_state_dict(ckpt["state_dict"])
    return task.eval()


def predict(cfg: DictConfig) -> dict[str, Any]:
    import torch

    from litvision.data.detection import read_image
    from litvision.metrics.detection import coco_results
    from litvision.tasks.detection import draw_detections
    from litvision.utils import console
    from litvision.utils.run import git_info, save_config, write_summary

    started = time.time()
    OmegaConf.resolve(cfg)
    files = list_images(cfg.input)
    run_dir = Path(cfg.paths.output_dir)
    console.print_start(cfg, str(run_dir))
    task = load_task(cfg.ckpt_path)
    net = task.net
    for attr, key in (("score_thresh", "score_thresh"), ("nms_thresh", "nms_thresh")):
        if cfg.get(key) is not None and hasattr(net, attr):
            setattr(net, attr, float(cfg[key]))  # YOLOv1 reads them at decoding time
    save_config(cfg, run_dir)
    out_images = run_dir / "images"
    out_images.mkdir(parents=True, exist_ok=True)
    ids = image_ids(files)
    thresh = float(cfg.score_thresh)
    predictions = []
    from torchvision.io import write_png

    with torch.inference_mode():
        for i in range(0, len(files), int(cfg.batch_size)):
            chunk = files[i : i + int(cfg.batch_size)]
            images = [read_image(p).as_subclass(torch.Tensor).float() / 255.0 for p in chunk]
            preds = task(images)
            for path, img, pred in zip(chunk, images, preds, strict=False):
                pred = {k: v[pred["scores"] >= thresh] for k, v in pred.items()}
                predictions.append(pred)
                write_png(draw_detections(img, pred, task.class_names), str(out_images / f"{path.stem}.png"))
    results = coco_results(predictions, ids, task.category_ids)
    (run_dir / "detections.json").write_text(json.dumps(results))
    (run_dir / "images.json").write_text(
        json.dumps([{"id": i, "file_name": p.name} for i, p in zip(ids, files, strict=False)], indent=1)
    )
    summary = {
        "experiment": cfg.name,
        "task": "predict",
        "run_dir": str(run_dir),
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
        "input": str(Path(cfg.input).resolve()),
        "images": len(files),
        "detections": len(results),
        "score_thresh": thresh,
        "class_names": task.class_names,
        "wall_time_s": round(time.time() - started, 2),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **git_info(project_root()),
    }
    write_summary(run_dir, summary)
    print(f"{len(results)} detections in {len(files)} images -> {run_dir}")
    return summary


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="predict")
def main(cfg: DictConfig) -> None:
    run_guarded(predict, cfg)


def cli(argv: list[str] | None = None) -> None:
    """Check the checkpoint and the input folder before Hydra makes a run folder, then predict."""
    from litvision.cli import _value, prepare

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        ckpt = _value(args, "ckpt_path")
        if ckpt in (None, "", "null"):
            raise UserError(
                "predict needs a checkpoint: `make predict EXP=<name> CKPT=<path/to.ckpt> INPUT=<folder>`."
            )
        inp = _value(args, "input")
        if inp in (None, "", "null"):
            raise UserError(
                "predict needs a folder of images: input=<folder> (make predict ... INPUT=<folder>)."
            )
        list_images(inp)
        if _value(args, "hydra.run.dir") is None:
            # The hydra group in the defaults list comes after this config's own keys, so the
            # predict folder is set here, where it wins.
            args.append("hydra.run.dir=${paths.runs_dir}/${name}/predict/${now:%Y-%m-%d_%H-%M-%S-%f}")
        args = prepare("predict", args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    sys.argv = [sys.argv[0], *args]
    main()


if __name__ == "__main__":
    cli()
