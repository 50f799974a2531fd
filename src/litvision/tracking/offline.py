"""Read an offline W&B run back from its `.wandb` transaction log, with wandb's own protobufs.

wandb 0.31 writes each run as a LevelDB-style log of `wandb.proto.wandb_internal_pb2.Record`
messages (the file `wandb sync` uploads) and no longer ships a Python reader for it; this is
that reader, checksums included, so tests and users can see what a run will upload:

    python -m litvision.tracking.offline runs/digits_cnn/<stamp>
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_FILE_HEADER = struct.Struct("<4sHB")  # ident ":W&B", magic 0xBEE1, version 0
_REC_HEADER = struct.Struct("<IHB")  # crc32, length, chunk type
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


class TransactionLogError(ValueError):
    pass


def _chunks(data: bytes, path: Path) -> Iterator[bytes]:
    ident, magic, version = _FILE_HEADER.unpack_from(data, 0)
    if ident != b":W&B" or magic != 0xBEE1 or version != 0:
        raise TransactionLogError(f"{path} is not a W&B transaction log (bad header)")
    pos = _FILE_HEADER.size
    pending = b""
    while pos < len(data):
        # A record header never straddles a block boundary: the rest of the block is padding.
        left = _BLOCK - pos % _BLOCK
        if left < _REC_HEADER.size:
            pos += left
            continue
        crc, length, kind = _REC_HEADER.unpack_from(data, pos)
        if length == 0 and kind == 0:  # zero padding at the end of a block
            pos += left
            continue
        payload = data[pos + _REC_HEADER.size : pos + _REC_HEADER.size + length]
        if len(payload) < length:
            break  # truncated tail (a run still being written, or killed): keep what is complete
        if zlib.crc32(payload, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF != crc:
            raise TransactionLogError(f"{path}: checksum mismatch at byte {pos}")
        pos += _REC_HEADER.size + length
        if kind == _FULL:
            yield payload
        elif kind == _FIRST:
            pending = payload
        elif kind == _MIDDLE:
            pending += payload
        elif kind == _LAST:
            yield pending + payload
            pending = b""


def read_records(path: str | Path) -> Iterator[Any]:
    """Every `Record` protobuf in a `.wandb` file, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    path = Path(path)
    for chunk in _chunks(path.read_bytes(), path):
        rec = pb.Record()
        rec.ParseFromString(chunk)
        yield rec


def _item_value(item: Any) -> Any:
    kind = item.WhichOneof("value") if "value" in [o.name for o in item.DESCRIPTOR.oneofs] else None
    if kind in ("none",):
        return None
    if kind in ("boolean", "integer", "number", "text"):
        return getattr(item, kind)
    if kind == "json":
        return json.loads(item.json)
    return json.loads(item.value_json) if item.value_json else None


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


def _set(target: dict[str, Any], item: Any, value: Any) -> None:
    """`key` sets a value; `nested_key` (how wandb-core stores media such as images) a nested one."""
    if item.key:
        target[item.key] = value
        return
    *parents, last = item.nested_key
    for p in parents:
        target = target.setdefault(p, {})
    target[last] = value


def _pop(target: dict[str, Any], item: Any) -> None:
    if item.key:
        target.pop(item.key, None)
    elif item.nested_key:
        for p in item.nested_key[:-1]:
            target = target.get(p, {})
        target.pop(item.nested_key[-1], None)


@dataclass
class OfflineRun:
    """What an offline run holds, as `wandb sync` would upload it."""

    path: Path
    run_id: str = ""
    name: str = ""
    project: str = ""
    entity: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    resumed: bool = False
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int | None = None


def load_offline_run(wandb_file: str | Path) -> OfflineRun:
    """Replay one `.wandb` file into an `OfflineRun` (config updates merged, summary as last written)."""
    run = OfflineRun(path=Path(wandb_file))
    for rec in read_records(wandb_file):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            run.run_id, run.name, run.project, run.entity = r.run_id, r.display_name, r.project, r.entity
            run.group, run.job_type, run.tags, run.resumed = r.run_group, r.job_type, list(r.tags), r.resumed
            for item in r.config.update:
                _set(run.config, item, json.loads(item.value_json))
        elif kind == "config":
            for item in rec.config.update:
                _set(run.config, item, json.loads(item.value_json))
            for item in rec.config.remove:
                _pop(run.config, item)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in rec.history.item:
                _set(row, item, _item_value(item))
            run.history.append(row)
        elif kind == "summary":
            for item in rec.summary.update:
                _set(run.summary, item, json.loads(item.value_json))
            for item in rec.summary.remove:
                _pop(run.summary, item)
        elif kind == "artifact":
            a = rec.artifact
            run.artifacts.append(
                {
                    "name": a.name,
                    "type": a.type,
                    "aliases": list(a.aliases),
                    "files": [e.path for e in a.manifest.contents],
                }
            )
        elif kind == "exit":
            run.exit_code = rec.exit.exit_code
    # wandb stores each config value as {"value": ..., "desc": ...}.
    run.config = {k: v.get("value", v) if isinstance(v, dict) else v for k, v in run.config.items()}
    return run


def offline_runs(run_dir: str | Path) -> list[OfflineRun]:
    """Every offline W&B run under a litvision run folder, oldest first (a resumed run adds one)."""
    files = sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))
    return [load_offline_run(f) for f in files]


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m litvision.tracking.offline <run folder | file.wandb>", file=sys.stderr)
        raise SystemExit(2)
    target = Path(args[0])
    runs = [load_offline_run(target)] if target.suffix == ".wandb" else offline_runs(target)
    if not runs:
        print(
            f"error: no offline W&B run under {target} (looked for wandb/offline-run-*/run-*.wandb)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    for r in runs:
        print(f"{r.path}\n  id={r.run_id} name={r.name} project={r.project} group={r.group} tags={r.tags}")
        print(f"  config keys: {', '.join(sorted(r.config)[:20])}")
        print(f"  history rows: {len(r.history)}  artifacts: {[a['name'] for a in r.artifacts]}")
        for k in sorted(r.summary):
            if not k.startswith("_"):
                print(f"  summary {k} = {r.summary[k]}")


if __name__ == "__main__":
    main()
