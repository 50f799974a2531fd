"""`litvision export`: a checkpoint as ONNX, TorchScript or an ExportedProgram, with a parity check.

    litvision export source=runs/digits_cnn/<stamp> format=onnx
    litvision export runs/digits_cnn/<stamp> --format onnx --out-dir deploy/digits    (flag form)

Its keys are configs/export.yaml's; the flag form (the command line of `make export` and of
litvision before export ran through the lifecycle) is read into the same keys. The export is an
artifact command: its folder holds only the model and export.json (litvision.deploy.out_dir), so the
lifecycle checks the request and plans that folder before anything is loaded, the export makes it
when the model has run, and a failure before export.json removes it again.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from litvision.errors import UserError
from litvision.lifecycle.session import Session
from litvision.lifecycle.spec import Command

#: flag -> key of configs/export.yaml (argparse would take `key=value` for the source: it is not used).
_FLAGS = {
    "--format": "format",
    "--out-dir": "out_dir",
    "--image-size": "image_size",
    "--batch-size": "batch_size",
}
_OVERRIDE = re.compile(r"^[+~]*[A-Za-z_][\w.]*=")


def _quoted(value: str) -> str:
    """A value as Hydra reads it whole (a path with spaces, commas, brackets or `=`). Hydra's quoted
    strings take a backslash as an escape only before a quote: a quote gets one, and the backslashes
    before a quote (or before the closing one) are doubled."""
    body = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)
    body = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, body)
    return f"'{body}'"


def flag_overrides(args: list[str]) -> list[str]:
    """`<source> --format F --out-dir D --image-size S --batch-size N --force` as the keys of
    configs/export.yaml; `key=value` arguments and other options (--cfg, an unknown one, refused
    later in one line) are kept as they are."""
    out: list[str] = []
    source: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        flag, eq, inline = a.partition("=")
        if flag in _FLAGS:
            if eq:
                value = inline
            elif i + 1 < len(args):
                i += 1
                value = args[i]
            else:
                raise UserError(f"{flag} needs a value: litvision export <run> {flag} <value>.")
            if flag == "--batch-size" and not value.strip().lstrip("-").isdigit():
                raise UserError(f"--batch-size={value!r} must be a whole number, at least 1.")
            key = _FLAGS[flag]
            out.append(f"{key}={value.strip()}" if flag == "--batch-size" else f"{key}={_quoted(value)}")
        elif a == "--force":
            out.append("force=true")
        elif a.startswith("-") or _OVERRIDE.match(a):
            out.append(a)
        else:
            source.append(a)
        i += 1
    if len(source) > 1:
        raise UserError(
            f"`litvision export` takes one run folder or .ckpt, not {len(source)} ({', '.join(source)}); "
            "quote a path with spaces."
        )
    return [f"source={_quoted(source[0])}"] + out if source else out


def precheck(cfg: DictConfig) -> None:
    from litvision.deploy.export import check_request

    if OmegaConf.is_missing(cfg, "source") or cfg.source in (None, ""):
        raise UserError(
            "export needs a checkpoint: litvision export <run folder or .ckpt> "
            "(or source=<...>; make export RUN=runs/<experiment>/<stamp>)."
        )
    check_request(str(cfg.format), _image_size(cfg), cfg.batch_size)


def _image_size(cfg: DictConfig) -> Any:
    """image_size as given: 224, "480x640" or [480, 640] (a plain list, not OmegaConf's)."""
    value = cfg.image_size
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def plan_folder(cfg: DictConfig) -> Any:
    from litvision.deploy.export import plan_folder as plan

    return plan(str(cfg.source), cfg.out_dir, bool(cfg.force))


def run(session: Session) -> dict[str, Any]:
    from litvision.deploy.export import export_into

    cfg = session.cfg
    return export_into(
        session.artifact, str(cfg.source), str(cfg.format), _image_size(cfg), int(cfg.batch_size)
    )


def report(record: dict[str, Any]) -> None:
    from litvision.deploy.out_dir import EXPORT_JSON

    shapes = json.dumps(record["checks"][0]["output_shapes"])
    print(
        f"{record['format']}: {record['file']} (max abs diff {record['max_abs_diff']:.3g}, "
        f"outputs {shapes}) -> {Path(record['file']).parent / EXPORT_JSON}",
        file=sys.stdout,
    )


#: `litvision export`: an artifact folder (model + export.json), planned by the command itself.
COMMAND = Command(
    "export",
    "export",
    run,
    precheck=precheck,
    report=report,
    folder="artifact",
    plan_folder=plan_folder,
    flags=flag_overrides,
)
