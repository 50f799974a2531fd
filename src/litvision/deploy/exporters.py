"""The three exporters (ONNX, TorchScript, torch.export ExportedProgram): each writes one file and
returns how it was made (exporter, opset, dynamic axes) for export.json.

  classification  input [N, C, H, W] normalised images, output logits [N, num_classes]; N is dynamic
                  (ONNX and ExportedProgram; checked on a second batch size).
  detection       input one image [3, H, W] in [0, 1] at the export size, outputs boxes [K, 4] (XYXY
                  pixels), scores [K], labels [K] (0..C-1) after the model's own NMS; K is dynamic.
                  torchvision detectors follow torchvision's ONNX and TorchScript support (one image
                  per call); torch.export cannot export their post-processing (data-dependent shapes),
                  so exported_program is refused with one line.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

from litvision.errors import UserError

FORMATS = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt", "exported_program": "model.pt2"}
ONNX_OPSET = 18
CHECKED_WITH = {
    "onnx": "onnxruntime",
    "torchscript": "torch.jit.load",
    "exported_program": "torch.export.load",
}


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


def write_format(
    fmt: str, module: Any, example: Any, path: Path, detection: bool, arch: str
) -> dict[str, Any]:
    """Export `module` as `fmt` into `path`; how it was made, for export.json."""
    import torch

    with torch.no_grad():
        if fmt == "onnx":
            return _onnx(module, example, path, detection)
        if fmt == "torchscript":
            how = _torchscript(module, example, path)
            if how["exporter"] == "torch.jit.trace" and not detection:
                how["dynamic_axes"] = ["N"]  # checked by the parity check on a second batch size
            return how
        return _exported_program(module, example, path, detection, arch)


def _versions(fmt: str) -> dict[str, str]:
    import torch

    out = {"torch": torch.__version__}
    if fmt == "onnx":
        import onnx
        import onnxruntime

        out.update({"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__})
    return out
