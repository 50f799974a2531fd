"""`litvision export`: a trained checkpoint as ONNX, TorchScript or a torch.export ExportedProgram,
proven to compute what the PyTorch model computes.

    litvision export runs/digits_cnn/<stamp> --format onnx        # = source=... format=onnx
    litvision export runs/yolov1_shapes/<stamp>/checkpoints/last.ckpt --format torchscript
    litvision export runs/digits_cnn/<stamp> --out-dir deploy/digits --image-size 8
    export_checkpoint(Path("runs/digits_cnn/<stamp>"), "exported_program")   # -> the export.json dict

`litvision export` runs through the lifecycle like fit, test, predict and tune (its command spec,
configs/export.yaml and the flag form: litvision.commands.export): the request is checked and the
folder planned before anything is loaded, and a failure before export.json removes what was made.
An export is a run like the others: it writes its own folder, by default
`runs/<experiment>/export/<stamp>/` beside the source run (the run folder itself stays read-only
once finished); `--out-dir` names a new or empty folder (a non-empty one only with `--force`,
never a run folder: see deploy/out_dir.py). Bad input (a bad --image-size, an unwritable or
occupied --out-dir, a missing or foreign checkpoint, a format the model cannot take) is one line
and exit code 2 before any work; a refusal leaves no folder behind.

The folder holds `model.<ext>` and `export.json`: the input and output shapes, each parity check
(deploy/parity.py) with its largest difference and tolerance, the versions, and every file written
(name, bytes, sha256). A difference above the tolerance is an error; export.json then stays, to
show it. `preprocessing` in export.json lists every step from an image file to the input (resize, crop,
scale, channels, mean/std; litvision.data.preprocessing). Modules: source.py (checkpoint, task, input size), exporters.py, parity.py, out_dir.py.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from litvision.deploy.exporters import CHECKED_WITH, FORMATS
from litvision.deploy.out_dir import EXPORT_JSON
from litvision.errors import UserError

_SEED = 0
_SIZE_HELP = "give one side in pixels (224) or HxW (480x640), each a whole number >= 1"


def check_image_size(value: Any) -> None:
    """--image-size: one side or HxW, whole numbers >= 1 (0 exported, then failed in ONNX)."""
    if value is None:
        return
    if isinstance(value, bool):
        ok = False
    elif isinstance(value, int):
        ok = value >= 1
    elif isinstance(value, str):
        parts = value.strip().lower().replace(",", "x").split("x")
        ok = len(parts) in (1, 2) and all(p.strip().isdigit() and int(p) >= 1 for p in parts)
    elif isinstance(value, (list, tuple)):
        ok = len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    else:
        ok = False
    if not ok:
        raise UserError(f"--image-size={value!r} is not valid: {_SIZE_HELP}.")


def _run_reference(module: Any, example: Any, size: tuple[int, int], image_size: Any) -> None:
    """The PyTorch model runs on the example before anything is written: a size the network cannot
    take (--image-size 2 on an 8x8 CNN) is the user's, and one line; with the trained size, a bug."""
    from litvision.deploy.parity import reference

    try:
        reference(module, example)
    except Exception as e:
        if image_size is None:
            raise
        from litvision.deploy.exporters import _first_line

        raise UserError(
            f"--image-size={image_size}: the model cannot run on a {size[0]}x{size[1]} input "
            f"({_first_line(e)}); give the size it was trained at, or one its layers can take."
        ) from None


def check_request(fmt: str, image_size: Any, batch_size: Any) -> None:
    """The export's own settings, each refused in one line before anything is loaded."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"--batch-size={batch_size} must be at least 1.")
    check_image_size(image_size)


def plan_folder(source: str | Path, out_dir: str | Path | None, force: bool) -> Any:
    """The export's folder (deploy/out_dir.OutDir), checked but not made: a run folder, an occupied
    or unwritable place, or a source that is no checkpoint is refused here."""
    from litvision.deploy import out_dir as outs
    from litvision.deploy.source import resolve_source

    src = resolve_source(source)
    return outs.plan_out_dir(out_dir, src.run_dir, src.checkpoint, force)


def export_checkpoint(
    source: str | Path,
    fmt: str = "onnx",
    out_dir: str | Path | None = None,
    image_size: Any = None,
    batch_size: int = 2,
    force: bool = False,
) -> dict[str, Any]:
    """Export `source` (run folder or .ckpt) as `fmt`, check it against PyTorch, write export.json.

    Returns what export.json holds. Bad input raises UserError; until the checkpoint has loaded, its
    input size is known and the model has run on the example, nothing is written. The same work as
    `litvision export`, without its command line (`litvision.cli.run("export", [...])` has it).
    """
    check_request(fmt, image_size, batch_size)
    out = plan_folder(source, out_dir, force)
    try:
        return export_into(out, source, fmt, image_size, batch_size)
    except BaseException:
        out.discard()  # a failed export (a refusal, a bug, Ctrl-C) leaves nothing half-written
        raise


def export_into(out: Any, source: str | Path, fmt: str, image_size: Any, batch_size: int) -> dict[str, Any]:
    """The export itself, into the planned folder `out` (made here, once the model has run on the
    example). A failure before export.json leaves `out` for the caller to discard; a parity failure
    keeps it (export.json shows the difference) and raises UserError."""
    from litvision.deploy import out_dir as outs
    from litvision.deploy.source import (
        _load_checkpoint,
        _run_config,
        inference_net,
        input_size,
        load_task,
        resolve_source,
    )
    from litvision.tasks.restore import preprocessing

    started = time.time()
    src = resolve_source(source)
    ckpt = _load_checkpoint(src.checkpoint)
    task, kind = load_task(ckpt, src.checkpoint)
    detection = kind == "detection"
    hp = ckpt["hyper_parameters"]
    pre = preprocessing(ckpt, src.checkpoint)
    run_cfg = _run_config(src.run_dir)
    h, w = input_size(ckpt, run_cfg, image_size, pre if not detection else None)
    pre = pre.at_size(h, w)
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
        c = pre.channels
        # Normalised images are roughly standard normal.
        example = torch.randn(batch_size, c, h, w, generator=gen)
        # A second batch size proves the batch axis is dynamic.
        batches = [example, torch.randn(batch_size + 1, c, h, w, generator=gen)]
    _run_reference(module, example, (h, w), image_size)

    out.make()
    path = out.path / FORMATS[fmt]
    from litvision.deploy.exporters import write_format

    how = write_format(fmt, module, example, path, detection, arch)
    from litvision.deploy.parity import parity, tolerance

    checked = parity(fmt, path, module, batches, detection, max(h, w))
    record = _record(fmt, path, src, pre, hp, task, detection, arch, how, checked)
    record["tolerance"] = tolerance(detection, max(h, w))
    record["files"] = outs.written_files(out)
    record["wall_time_s"] = round(time.time() - started, 2)
    from litvision.utils.run import _json_safe

    (out.path / EXPORT_JSON).write_text(json.dumps(_json_safe(record), indent=2) + "\n")
    out.recorded = True
    if not checked["passed"]:
        raise UserError(
            f"the {fmt} export of {src.checkpoint} differs from the PyTorch model by {checked['max_abs_diff']:.3g} "
            f"(tolerance {record['tolerance']}); see {out.path / EXPORT_JSON}."
        )
    return record


def _record(
    fmt: str,
    path: Path,
    src: Any,
    pre: Any,
    hp: dict[str, Any],
    task: Any,
    detection: bool,
    arch: str,
    how: dict[str, Any],
    checked: dict[str, Any],
) -> dict[str, Any]:
    from litvision.deploy.exporters import _versions

    h, w = pre.size
    steps = pre.to_dict()
    return {
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
            "shape": [3, h, w] if detection else ["N", pre.channels, h, w],
            "dtype": "float32",
            "values": (
                "RGB in [0, 1] (the model normalises inside)"
                if detection
                else "an image file through `preprocessing` (resize, crop, scale, channels, mean/std)"
            ),
            "mean": steps["mean"],
            "std": steps["std"],
        },
        # Every step from an image file to `input`, in order: enough to redo it with PIL and numpy.
        "preprocessing": steps,
        "outputs": (
            {"boxes": ["K", 4], "scores": ["K"], "labels": ["K"]}
            if detection
            else {"logits": ["N", int(hp["num_classes"])]}
        ),
        **how,
        "max_abs_diff": checked["max_abs_diff"],
        "parity_passed": checked["passed"],
        "checks": checked["checks"],
        "checked_with": CHECKED_WITH[fmt],
        "versions": _versions(fmt),
        "file_bytes": path.stat().st_size,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
