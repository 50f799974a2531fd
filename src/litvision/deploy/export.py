"""Export a trained checkpoint to ONNX, TorchScript or a torch.export ExportedProgram, and prove it
computes what the PyTorch model computes.

    python -m litvision.deploy.export runs/digits_cnn/<stamp> --format onnx
    python -m litvision.deploy.export runs/yolov1_shapes/<stamp>/checkpoints/last.ckpt --format torchscript
    export_checkpoint(Path("runs/digits_cnn/<stamp>"), "exported_program")   # -> the export.json dict

The source is a run folder (its best checkpoint, from summary.json, else checkpoints/last.ckpt) or a
.ckpt file. The task is rebuilt from the checkpoint's own hyper-parameters (no config, no download).
Each export runs the exported file (ONNX through onnxruntime, TorchScript through torch.jit.load,
ExportedProgram through torch.export.load) and the PyTorch model on one fixed, seeded batch and
writes, beside the file, `export.json`: the input shape, each output's shape, the largest absolute
difference and the tolerance it was held to. A difference above the tolerance is an error.

What each kind of model exports as:
  classification  input [N, C, H, W] normalised images, output logits [N, num_classes]; N is dynamic
                  (ONNX and ExportedProgram; checked on a second batch size). Tolerance 1e-4 (fp32).
  detection       input one image [3, H, W] in [0, 1] at the export size, outputs boxes [K, 4] (XYXY
                  pixels), scores [K], labels [K] (0..C-1) after the model's own NMS; K is dynamic.
                  torchvision detectors follow torchvision's ONNX and TorchScript support (one image
                  per call); torch.export cannot export their post-processing (data-dependent shapes),
                  so exported_program is refused with one line. Detections are compared as sets
                  (the order of equal scores is not defined): boxes within 1e-5 x the image side,
                  scores within 1e-4, labels equal. The check runs on the example image and on a
                  second one, which catches graphs holding values traced from the example (seen
                  here: SSDlite through ONNX is refused; Faster R-CNN and YOLOv1 pass).

The default output folder is `runs/<experiment>/export/<timestamp>/` beside the source run (the run
folder itself stays read-only once finished); `--out-dir` puts `model.<ext>` and `export.json` there.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from litvision.errors import UserError

FORMATS = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt", "exported_program": "model.pt2"}
CLASSIFICATION_TOL = 1e-4
DETECTION_SCORE_TOL = 1e-4
# Box coordinates are pixels: fp32 rounding grows with the image side.
DETECTION_BOX_TOL_PER_PIXEL = 1e-5
ONNX_OPSET = 18
EXPORT_JSON = "export.json"
_SEED = 0


@dataclass
class Source:
    checkpoint: Path
    run_dir: Path | None  # the run folder holding config.yaml, when the checkpoint sits in one


# -- finding and reading the checkpoint --------------------------------------------------------
def resolve_source(source: str | Path) -> Source:
    """A run folder or a .ckpt file -> the checkpoint to export and its run folder (if any)."""
    path = Path(source).expanduser()
    if path.is_dir():
        ckpt = _run_checkpoint(path)
        return Source(ckpt, path if (path / "config.yaml").is_file() else None)
    if not path.is_file():
        raise UserError(
            f"{path} does not exist; pass a run folder (runs/<experiment>/<stamp>) or a .ckpt file."
        )
    run = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return Source(path, run if (run / "config.yaml").is_file() else None)


def _run_checkpoint(run: Path) -> Path:
    summary = run / "summary.json"
    if summary.is_file():
        try:
            best = json.loads(summary.read_text()).get("best_checkpoint")
        except (json.JSONDecodeError, AttributeError):
            best = None
        if best and Path(best).is_file():
            return Path(best)
    last = run / "checkpoints" / "last.ckpt"
    if last.is_file():
        return last
    found = sorted((run / "checkpoints").glob("*.ckpt")) if (run / "checkpoints").is_dir() else []
    if found:
        return found[-1]
    raise UserError(
        f"{run} holds no checkpoint (no best_checkpoint in summary.json, no checkpoints/*.ckpt); "
        "pass a litvision run folder or a .ckpt file."
    )


def _load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint through the project's one safe loader (weights only; a payload is refused)."""
    from litvision.utils.safe_load import load_checkpoint

    return load_checkpoint(path)


def _hyper_parameters(ckpt: dict[str, Any], path: Path) -> dict[str, Any]:
    hp = ckpt.get("hyper_parameters")
    net = hp.get("net") if isinstance(hp, dict) else None
    if (
        not isinstance(net, dict)
        or "_target_" not in net
        or "num_classes" not in hp
        or "state_dict" not in ckpt
    ):
        raise UserError(
            f"{path} is not a litvision checkpoint (no hyper_parameters.net/num_classes or state_dict); "
            "pass a .ckpt written by `litvision train`."
        )
    return dict(hp)


def is_detection(hp: dict[str, Any]) -> bool:
    return str(hp["net"]["_target_"]).startswith("litvision.models.detection.")


def rebuild_task(ckpt: dict[str, Any], path: Path) -> Any:
    """The task (in eval mode) from the checkpoint's hyper-parameters and weights; nothing is downloaded."""
    from litvision.models.weights import without_pretrained

    hp = _hyper_parameters(ckpt, path)
    hp["net"] = without_pretrained(hp["net"])
    if is_detection(hp):
        from litvision.tasks.detection import DetectionTask as Task
    else:
        from litvision.tasks.classification import ClassificationTask as Task
    with warnings.catch_warnings():
        # Builders warn about pretrained-only options (trainable_backbone_layers) that do not apply here.
        warnings.simplefilter("ignore", UserWarning)
        task = Task(**hp)
    missing, unexpected = task.load_state_dict(ckpt["state_dict"], strict=False)
    if missing or unexpected:
        raise UserError(
            f"{path}: its weights do not fit the model its hyper-parameters describe "
            f"(missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]}); was it written by another "
            "version of litvision?"
        )
    return task.eval()


def inference_net(task: Any) -> Any:
    """The network whose weights serve predictions (the one place to route EMA weights through)."""
    return task.net


# -- the input the model is exported and checked with ------------------------------------------
def _run_config(run_dir: Path | None) -> Any:
    if run_dir is None:
        return None
    from omegaconf import OmegaConf

    try:
        return OmegaConf.load(run_dir / "config.yaml")
    except Exception:  # an unreadable config only loses a fallback for the input size
        return None


def _parse_size(value: Any) -> tuple[int, int] | None:
    """int | [h, w] | {min_size, max_size} | "HxW" -> (h, w)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value, value
    if isinstance(value, str):
        parts = value.lower().replace(",", "x").split("x")
        if all(p.strip().isdigit() for p in parts) and len(parts) in (1, 2):
            h, w = int(parts[0]), int(parts[-1])
            return h, w
        raise UserError(f"--image-size={value!r} is not understood; give one side (224) or HxW (480x640).")
    if isinstance(value, dict) or hasattr(value, "keys"):
        side = value.get("min_size")
        return (int(side), int(side)) if side is not None else None
    if isinstance(value, (list, tuple)) or hasattr(value, "__len__"):
        items = list(value)
        if len(items) == 2:
            return int(items[0]), int(items[1])
    return None


def input_size(ckpt: dict[str, Any], run_cfg: Any, override: Any = None) -> tuple[int, int]:
    """(H, W) the model is exported at: --image-size, else what the data fed it in training.

    Read from the DataModule's hyper-parameters in the checkpoint, then the network's own input size
    (YOLOv1 image_size, timm img_size), then a DataModule whose data fixes the size (`image_size`
    class attribute, e.g. the 8x8 digits).
    """
    size = _parse_size(override)
    if size:
        return size
    dm_hp = ckpt.get("datamodule_hyper_parameters") or {}
    net = (ckpt.get("hyper_parameters") or {}).get("net") or {}
    for value in (dm_hp.get("image_size"), net.get("image_size"), net.get("img_size")):
        size = _parse_size(value)
        if size:
            return size
    target = run_cfg.get("data", {}).get("_target_") if run_cfg is not None else None
    if target:
        import importlib

        module, _, name = str(target).rpartition(".")
        try:
            fixed = getattr(importlib.import_module(module), name).image_size
        except (ImportError, AttributeError):
            fixed = None
        if isinstance(fixed, int):
            return fixed, fixed
    raise UserError(
        "cannot tell the input size this model was trained at (no data.image_size in the checkpoint "
        "or its run's config.yaml); pass --image-size H or HxW."
    )


def in_channels(ckpt: dict[str, Any]) -> int:
    dm_hp = ckpt.get("datamodule_hyper_parameters") or {}
    net = (ckpt.get("hyper_parameters") or {}).get("net") or {}
    for value in (dm_hp.get("in_channels"), net.get("in_channels"), net.get("in_chans")):
        if isinstance(value, int) and value > 0:
            return value
    return 3


# -- exporters ----------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet() -> Any:
    """torch.export logs the whole traced graph when it gives up; the user gets one line instead."""
    import logging

    torch_log = logging.getLogger("torch")
    level = torch_log.level
    torch_log.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        torch_log.setLevel(level)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    return line[:200]


def _onnx(module: Any, example: Any, path: Path, detection: bool) -> dict[str, Any]:
    import torch

    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise UserError(
            "--format onnx needs the onnx and onnxruntime packages: pip install onnx onnxruntime onnxscript."
        ) from None
    params = sum(p.numel() * p.element_size() for p in module.parameters())
    if detection:
        # torch.export cannot trace torchvision's detection post-processing (data-dependent shapes);
        # the TorchScript-based exporter is the path torchvision tests its detectors with.
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (example,),
                str(path),
                dynamo=False,
                opset_version=ONNX_OPSET,
                input_names=["image"],
                output_names=["boxes", "scores", "labels"],
                dynamic_axes={
                    "boxes": {0: "detections"},
                    "scores": {0: "detections"},
                    "labels": {0: "detections"},
                },
            )
        return {"exporter": "torch.onnx (TorchScript-based)", "opset": ONNX_OPSET, "dynamic_axes": ["K"]}
    torch.onnx.export(
        module,
        (example,),
        str(path),
        dynamo=True,
        opset_version=ONNX_OPSET,
        input_names=["images"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=65536)},),
        # One self-contained file unless the weights pass protobuf's 2 GB limit.
        external_data=params > 1.5e9,
        verbose=False,
    )
    return {"exporter": "torch.onnx (dynamo)", "opset": ONNX_OPSET, "dynamic_axes": ["N"]}


def _torchscript(module: Any, example: Any, path: Path) -> dict[str, Any]:
    import warnings

    import torch

    with warnings.catch_warnings():
        # torch.jit is deprecated in favour of torch.export, yet still what C++/mobile runtimes load.
        warnings.simplefilter("ignore")
        try:
            scripted = torch.jit.script(module)
            method = "script"
        except Exception:
            # Models TorchScript cannot compile (some timm blocks, YOLOv1's list-or-tensor input) are traced.
            try:
                scripted = torch.jit.trace(module, (example,), check_trace=False)
            except Exception as e:
                raise UserError(f"TorchScript cannot script or trace this model: {_first_line(e)}") from None
            method = "trace"
        scripted.save(str(path))
    return {"exporter": f"torch.jit.{method}", "dynamic_axes": ["N"] if method == "script" else []}


def _exported_program(module: Any, example: Any, path: Path, detection: bool, arch: str) -> dict[str, Any]:
    import torch

    dynamic = None if detection else ({0: torch.export.Dim("batch", min=1, max=65536)},)
    try:
        with _quiet():
            program = torch.export.export(module, (example,), dynamic_shapes=dynamic)
    except Exception as e:
        why = (
            "its post-processing (score filtering, NMS) has data-dependent output shapes"
            if detection
            else _first_line(e)
        )
        raise UserError(
            f"torch.export cannot export {arch}: {why}; use --format onnx or --format torchscript."
        ) from None
    torch.export.save(program, str(path))
    return {"exporter": "torch.export", "dynamic_axes": [] if detection else ["N"]}


# -- running the exported file -------------------------------------------------------------------
def _run_exported(fmt: str, path: Path, x: Any) -> list[Any]:
    import warnings

    import torch

    if fmt == "onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return [torch.from_numpy(o) for o in sess.run(None, {name: x.numpy()})]
    with torch.no_grad(), warnings.catch_warnings():
        # torch.jit is deprecated in favour of torch.export, yet still what C++/mobile runtimes load.
        warnings.simplefilter("ignore", FutureWarning)
        if fmt == "torchscript":
            out = torch.jit.load(str(path), map_location="cpu")(x)
        else:
            out = torch.export.load(str(path)).module()(x)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _reference(module: Any, x: Any) -> list[Any]:
    import torch

    with torch.no_grad():
        out = module(x)
    return [t.detach() for t in out] if isinstance(out, (tuple, list)) else [out.detach()]


def detection_set_difference(a: list[Any], b: list[Any], side: float) -> dict[str, float]:
    """Largest box and score difference between two detection sets (boxes, scores, labels).

    Order-free: each detection is matched to the nearest one of the same label in the other set
    (both ways); two sets are equal exactly when both differences are 0. Different counts: inf.
    """
    import torch

    (ba, sa, la), (bb, sb, lb) = a, b
    if len(ba) != len(bb):
        return {"boxes": float("inf"), "scores": float("inf")}
    if len(ba) == 0:
        return {"boxes": 0.0, "scores": 0.0}
    # Distance between detections: box difference in units of the box tolerance, plus score difference
    # in units of the score tolerance, so that one nearest neighbour answers for both.
    fa = torch.cat(
        [ba.float() / (DETECTION_BOX_TOL_PER_PIXEL * side), sa.float()[:, None] / DETECTION_SCORE_TOL], 1
    )
    fb = torch.cat(
        [bb.float() / (DETECTION_BOX_TOL_PER_PIXEL * side), sb.float()[:, None] / DETECTION_SCORE_TOL], 1
    )
    d = torch.cdist(fa.double(), fb.double(), p=float("inf"))
    d[la.long()[:, None] != lb.long()[None, :]] = float("inf")
    worst_box = worst_score = 0.0
    for dist, src, dst, s_src, s_dst in ((d, ba, bb, sa, sb), (d.T, bb, ba, sb, sa)):
        nearest = dist.argmin(1)
        if not torch.isfinite(dist.min(1).values).all():
            return {"boxes": float("inf"), "scores": float("inf")}
        worst_box = max(worst_box, float((src.float() - dst[nearest].float()).abs().max()))
        worst_score = max(worst_score, float((s_src.float() - s_dst[nearest].float()).abs().max()))
    return {"boxes": worst_box, "scores": worst_score}


def _parity(
    fmt: str, path: Path, module: Any, batches: list[Any], detection: bool, side: int
) -> dict[str, Any]:
    checks = []
    worst = 0.0
    passed = True
    for x in batches:
        ref = _reference(module, x)
        got = _run_exported(fmt, path, x)
        if detection:
            diff = detection_set_difference(got, ref, side)
            ok = diff["boxes"] <= DETECTION_BOX_TOL_PER_PIXEL * side and diff["scores"] <= DETECTION_SCORE_TOL
            value = max(diff.values())
            entry = {"max_abs_diff_boxes": diff["boxes"], "max_abs_diff_scores": diff["scores"]}
        else:
            shapes_ok = len(got) == len(ref) and all(g.shape == r.shape for g, r in zip(got, ref))
            value = (
                max(float((g.float() - r.float()).abs().max()) for g, r in zip(got, ref))
                if shapes_ok
                else float("inf")
            )
            ok = value <= CLASSIFICATION_TOL
            entry = {"max_abs_diff": value}
        checks.append(
            {
                "input_shape": list(x.shape),
                "output_shapes": [list(g.shape) for g in got],
                "reference_shapes": [list(r.shape) for r in ref],
                **entry,
                "passed": bool(ok),
            }
        )
        worst = max(worst, value)
        passed = passed and ok
    return {"checks": checks, "max_abs_diff": worst, "passed": passed}


def _default_out_dir(src: Source) -> Path:
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    base = src.run_dir.parent if src.run_dir is not None else src.checkpoint.parent
    return base / "export" / stamp


def _versions(fmt: str) -> dict[str, str]:
    import torch

    out = {"torch": torch.__version__}
    if fmt == "onnx":
        import onnx
        import onnxruntime

        out.update({"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__})
    return out


def export_checkpoint(
    source: str | Path,
    fmt: str = "onnx",
    out_dir: str | Path | None = None,
    image_size: Any = None,
    batch_size: int = 2,
) -> dict[str, Any]:
    """Export `source` (run folder or .ckpt) as `fmt`, check it against PyTorch, write export.json.

    Returns what export.json holds. Bad input (missing or foreign checkpoint, unknown format, a model
    the format cannot express, a failed parity check) raises UserError; until the checkpoint has
    loaded and its input size is known, nothing is written.
    """
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}.")
    if batch_size < 1:
        raise UserError(f"--batch-size={batch_size} must be at least 1.")
    started = time.time()
    src = resolve_source(source)
    ckpt = _load_checkpoint(src.checkpoint)
    hp = _hyper_parameters(ckpt, src.checkpoint)
    detection = is_detection(hp)
    run_cfg = _run_config(src.run_dir)
    h, w = input_size(ckpt, run_cfg, image_size)
    task = rebuild_task(ckpt, src.checkpoint)
    net = inference_net(task)
    from litvision.deploy.wrappers import export_module

    module = export_module(net, detection)
    arch = str(hp["net"].get("arch") or hp["net"]["_target_"].rsplit(".", 1)[-1])

    import torch

    gen = torch.Generator().manual_seed(_SEED)
    if detection:
        example = torch.rand(3, h, w, generator=gen)
        batches = [example, torch.rand(3, h, w, generator=gen)]
    else:
        c = in_channels(ckpt)
        # Normalised images are roughly standard normal.
        example = torch.randn(batch_size, c, h, w, generator=gen)
        # A second batch size proves the batch axis is dynamic.
        batches = [example, torch.randn(batch_size + 1, c, h, w, generator=gen)]

    out = Path(out_dir).expanduser() if out_dir is not None else _default_out_dir(src)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    path = out / FORMATS[fmt]
    try:
        with torch.no_grad():
            if fmt == "onnx":
                how = _onnx(module, example, path, detection)
            elif fmt == "torchscript":
                how = _torchscript(module, example, path)
                if how["exporter"] == "torch.jit.trace" and not detection:
                    how["dynamic_axes"] = ["N"]  # checked below on a second batch size
            else:
                how = _exported_program(module, example, path, detection, arch)
    except UserError:
        if created:  # a refused export leaves no empty folder behind
            import shutil

            shutil.rmtree(out, ignore_errors=True)
        raise
    parity = _parity(fmt, path, module, batches, detection, max(h, w))
    dm_hp = ckpt.get("datamodule_hyper_parameters") or {}
    record = {
        "format": fmt,
        "file": str(path.resolve()),
        "checkpoint": str(src.checkpoint.resolve()),
        "run_dir": str(src.run_dir.resolve()) if src.run_dir else None,
        "task": "detection" if detection else "classification",
        "arch": arch,
        "num_classes": int(hp["num_classes"]),
        "class_names": list(task.class_names),
        "input": {
            "name": "image" if detection else "images",
            "shape": [3, h, w] if detection else ["N", in_channels(ckpt), h, w],
            "dtype": "float32",
            "values": "RGB in [0, 1]" if detection else "normalised with the data's mean/std",
            "mean": list(dm_hp["mean"]) if dm_hp.get("mean") is not None else None,
            "std": list(dm_hp["std"]) if dm_hp.get("std") is not None else None,
        },
        "outputs": (
            {"boxes": ["K", 4], "scores": ["K"], "labels": ["K"]}
            if detection
            else {"logits": ["N", int(hp["num_classes"])]}
        ),
        **how,
        "tolerance": (
            {"boxes": DETECTION_BOX_TOL_PER_PIXEL * max(h, w), "scores": DETECTION_SCORE_TOL}
            if detection
            else CLASSIFICATION_TOL
        ),
        "max_abs_diff": parity["max_abs_diff"],
        "parity_passed": parity["passed"],
        "checks": parity["checks"],
        "checked_with": {
            "onnx": "onnxruntime",
            "torchscript": "torch.jit.load",
            "exported_program": "torch.export.load",
        }[fmt],
        "versions": _versions(fmt),
        "file_bytes": path.stat().st_size,
        "wall_time_s": round(time.time() - started, 2),
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    from litvision.utils.run import _json_safe

    (out / EXPORT_JSON).write_text(json.dumps(_json_safe(record), indent=2) + "\n")
    if not parity["passed"]:
        raise UserError(
            f"the {fmt} export of {src.checkpoint} differs from the PyTorch model by {parity['max_abs_diff']:.3g} "
            f"(tolerance {record['tolerance']}); see {out / EXPORT_JSON}."
        )
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="litvision export",
        description="Export a checkpoint and check the exported model against PyTorch (export.json).",
    )
    parser.add_argument("source", help="a run folder (runs/<experiment>/<stamp>) or a .ckpt file")
    parser.add_argument("--format", default="onnx", help=f"one of {', '.join(FORMATS)} (default onnx)")
    parser.add_argument("--out-dir", default=None, help="folder for the file and export.json")
    parser.add_argument("--image-size", default=None, help="input side H or HxW (default: the training size)")
    parser.add_argument("--batch-size", type=int, default=2, help="parity-check batch (classification)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    from litvision.errors import guarded

    record = guarded(
        export_checkpoint, args.source, args.format, args.out_dir, args.image_size, args.batch_size
    )
    print(
        f"{record['format']}: {record['file']} (max abs diff {record['max_abs_diff']:.3g}, "
        f"outputs {json.dumps(record['checks'][0]['output_shapes'])}) -> {Path(record['file']).parent / EXPORT_JSON}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
