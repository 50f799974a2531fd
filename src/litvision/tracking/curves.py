"""A run's learning curves, from whichever logger it used: one table of `step`, `epoch` and metrics.

Tried in this order, the first found wins:
- CSV (`<run>/csv/metrics.csv`, Lightning's CSVLogger): the default and the fastest to read;
- TensorBoard event files (`<run>/tensorboard/events.out.tfevents.*`), read with tensorboard's
  own EventAccumulator;
- MLflow: the run named in `<run>/mlflow_run.json`, read from its SQLite store (the run folder's
  own `mlflow/mlflow.db`, or a shared `sqlite:///...` store) with sqlite3, which needs no mlflow import;
- W&B offline files (`<run>/wandb/*run-*/run-*.wandb`), read with wandb's own record reader.

A run logged with `logger=wandb` or `logger=mlflow` alone has no CSV: without these readers it was
silently missing from `make compare`'s curves.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any

# Lightning's WandbLogger adds the step under this name to every history row.
_WANDB_STEP = "trainer/global_step"


def _frame(rows: dict[int, dict[str, float]]) -> Any | None:
    """{step: {metric: value}} -> a DataFrame sorted by step (None when empty)."""
    import pandas as pd

    if not rows:
        return None
    df = pd.DataFrame([{"step": s, **v} for s, v in sorted(rows.items())])
    return df


def read_csv(run_dir: Path) -> Any | None:
    import pandas as pd

    path = run_dir / "csv" / "metrics.csv"
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return None


def read_tensorboard(run_dir: Path) -> Any | None:
    files = sorted(run_dir.glob("tensorboard/**/events.out.tfevents.*"))
    if not files:
        return None
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows: dict[int, dict[str, float]] = defaultdict(dict)
    for f in files:
        acc = EventAccumulator(str(f), size_guidance={"scalars": 0})
        try:
            acc.Reload()
        except Exception:  # noqa: BLE001 - a truncated event file (a killed run): use the others
            continue
        for tag in acc.Tags().get("scalars", []):
            for e in acc.Scalars(tag):
                rows[int(e.step)][tag] = float(e.value)
    return _frame(rows)


def _mlflow_store(run_dir: Path, info: dict[str, Any]) -> Path | None:
    uri = str(info.get("tracking_uri") or "")
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///"))
    local = run_dir / "mlflow" / "mlflow.db"
    return local if local.is_file() else None


def read_mlflow(run_dir: Path) -> Any | None:
    try:
        info = json.loads((run_dir / "mlflow_run.json").read_text())
    except (OSError, ValueError):
        return None
    store = _mlflow_store(run_dir, info if isinstance(info, dict) else {})
    if store is None or not store.is_file() or not info.get("run_id"):
        return None
    rows: dict[int, dict[str, float]] = defaultdict(dict)
    try:
        # Read-only: the store may be shared with runs still writing to it.
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
            found = db.execute(
                "SELECT key, value, step FROM metrics WHERE run_uuid = ? ORDER BY timestamp",
                (info["run_id"],),
            ).fetchall()
    except sqlite3.Error:
        return None
    for key, value, step in found:
        rows[int(step)][key] = float(value)
    return _frame(rows)


# W&B's transaction log (`run-<id>.wandb`): a 7-byte header (":W&B", magic 0xBEE1, version 0), then
# LevelDB's log format: 32 KiB blocks of records, each with a 7-byte header (crc32, length, type),
# a record split across blocks as FIRST/MIDDLE/LAST pieces. wandb >= 0.19 has no Python reader of
# its own (its Go core writes the file), so the format is read here.
_WANDB_HEADER = b":W&B\xe1\xbe\x00"
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def wandb_records(path: Path) -> list[bytes]:
    """The serialized protobuf records of a W&B transaction log (a truncated tail is dropped)."""
    import struct

    data = path.read_bytes()
    if not data.startswith(_WANDB_HEADER):
        return []
    out, pending, pos = [], b"", len(_WANDB_HEADER)
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:  # the block's tail is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack_from("<IHB", data, pos)
        piece = data[pos + 7 : pos + 7 + length]
        if len(piece) < length or kind not in (_FULL, _FIRST, _MIDDLE, _LAST):
            break
        pos += 7 + length
        if kind == _FULL:
            out.append(piece)
        elif kind == _FIRST:
            pending = piece
        elif kind == _MIDDLE:
            pending += piece
        else:
            out.append(pending + piece)
            pending = b""
    return out


def read_wandb(run_dir: Path) -> Any | None:
    files = sorted(run_dir.glob("wandb/*run-*/run-*.wandb"))
    if not files:
        return None
    from wandb.proto import wandb_internal_pb2

    rows: dict[int, dict[str, float]] = defaultdict(dict)
    for f in files:
        for data in wandb_records(f):
            record = wandb_internal_pb2.Record()
            try:
                record.ParseFromString(data)
            except Exception:  # noqa: BLE001 - a damaged record: skip it, keep the others
                continue
            if record.WhichOneof("record_type") != "history":
                continue
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
            step = items.get(_WANDB_STEP, items.get("_step"))
            if not isinstance(step, (int, float)):
                continue
            for k, v in items.items():
                numeric = isinstance(v, (int, float)) and math.isfinite(v)
                if numeric and not k.startswith("_") and k != _WANDB_STEP:
                    rows[int(step)][k] = float(v)
    return _frame(rows)


READERS = (
    ("csv", read_csv),
    ("tensorboard", read_tensorboard),
    ("mlflow", read_mlflow),
    ("wandb", read_wandb),
)


def read_any(run_dir: Path) -> tuple[Any | None, str | None]:
    """(the run's curves, the logger they came from), or (None, None) when no logger left any."""
    for name, reader in READERS:
        df = reader(run_dir)
        if df is not None and "step" in df:
            return df, name
    return None, None
