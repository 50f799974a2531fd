"""Downloads with a checksum, and the error that says what to do when there is no network."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from litvision.errors import UserError


def download_failed(dataset: str, urls: list[str], folder: Path, reason: str, manual: str) -> UserError:
    return UserError(
        f"Could not download {dataset} into {folder} from {' or '.join(urls)} ({reason[:300]}). "
        f"Without network: {manual}, or set data.root to where the data already is."
    )


def sha256sum(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _fetch(url: str, dest: Path, chunk: int = 1 << 20) -> None:
    """Stream `url` (http(s), following redirects, or file://) to `dest`."""
    import urllib.request

    req = urllib.request.Request(url, headers={"User-Agent": "litvision"})
    with urllib.request.urlopen(req, timeout=60) as response, open(dest, "wb") as f:
        while block := response.read(chunk):
            f.write(block)


def download_verified(url: str, dest: Path, sha256: str, dataset: str, manual: str) -> Path:
    """Download `url` to `dest` (skipped when a file with the right sha256 is there); verify it."""
    if dest.is_file() and sha256sum(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Download beside the destination, then move: an interrupted download never looks finished.
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".download-") as tmp:
        try:
            _fetch(url, Path(tmp) / dest.name)
        except Exception as e:  # noqa: BLE001 - network errors come in many types; all mean the same here
            raise download_failed(dataset, [url], dest.parent, f"{type(e).__name__}: {e}", manual) from None
        got = sha256sum(Path(tmp) / dest.name)
        if got != sha256:
            raise UserError(
                f"{url} downloaded with sha256 {got}, expected {sha256}: the download is corrupt or the file "
                f"changed upstream; try again, or {manual}."
            )
        shutil.move(str(Path(tmp) / dest.name), dest)
    return dest
