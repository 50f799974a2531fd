"""The parity check: the exported file (ONNX through onnxruntime, TorchScript through
torch.jit.load, ExportedProgram through torch.export.load) and the PyTorch model run on the same
fixed, seeded batches; the largest difference must stay within the tolerance.

Classification logits are held to 1e-4 (fp32). Detections are compared as sets (the order of equal
scores is not defined): boxes within 1e-5 x the image side, scores within 1e-4, labels equal. The
check runs on the example input and on a second one, which catches graphs holding values traced
from the example (seen here: SSDlite through ONNX is refused; Faster R-CNN and YOLOv1 pass).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CLASSIFICATION_TOL = 1e-4
DETECTION_SCORE_TOL = 1e-4
# Box coordinates are pixels: fp32 rounding grows with the image side.
DETECTION_BOX_TOL_PER_PIXEL = 1e-5


def tolerance(detection: bool, side: int) -> Any:
    """The tolerance export.json states (and the check holds the export to)."""
    if detection:
        return {"boxes": DETECTION_BOX_TOL_PER_PIXEL * side, "scores": DETECTION_SCORE_TOL}
    return CLASSIFICATION_TOL


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


def reference(module: Any, x: Any) -> list[Any]:
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


def parity(
    fmt: str, path: Path, module: Any, batches: list[Any], detection: bool, side: int
) -> dict[str, Any]:
    checks = []
    worst = 0.0
    passed = True
    for x in batches:
        ref = reference(module, x)
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
