"""An MLflow store that cannot work (a read-only folder, a server that does not answer, a URI MLflow
cannot read) is refused in one line before any run folder exists, instead of MLflow retrying for
minutes and failing with tracebacks after the run folder was made."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import ROOT, one_line_refusal, run_cli

from litvision.errors import UserError
from litvision.tracking.mlflow_store import check_store

FIT = ["fit", "experiment=digits_cnn", "logger=mlflow", "debug=limit"]


def _can_bind_read_only() -> bool:
    if not shutil.which("unshare"):
        return False
    with tempfile.TemporaryDirectory() as d:
        script = f'mount --bind "{d}" "{d}" && mount -o remount,bind,ro "{d}" && ! touch "{d}/x" 2>/dev/null'
        return subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True).returncode == 0


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not _can_bind_read_only(), reason="needs `unshare -rm` to bind-mount a folder read-only")
def test_read_only_sqlite_store_is_one_line_before_any_folder(tmp_path: Path) -> None:
    """MLFLOW_TRACKING_URI names a SQLite file in a read-only bind mount (EROFS even for root).
    Catches: the store not checked up front (the run starts, MLflow retries, then tracebacks and an
    orphan run folder), and only the SQLite file checked, not its folder (a new file is never read-only)."""
    ro, runs = tmp_path / "ro", tmp_path / "runs"
    ro.mkdir()
    uri = f"sqlite:///{ro / 'mlflow.db'}"
    script = f'mount --bind "{ro}" "{ro}" && mount -o remount,bind,ro "{ro}" && exec "$@"'
    cmd = [sys.executable, "-m", "litvision", *FIT, f"paths.runs_dir={runs}"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", *cmd], cwd=ROOT, env=env, capture_output=True, text=True
    )
    line = one_line_refusal(
        proc, f"MLFLOW_TRACKING_URI={uri} cannot be used", f"its folder {ro} is read-only"
    )
    assert "logger=csv" in line
    assert not runs.exists() and list(ro.iterdir()) == []


def test_server_that_does_not_answer_is_one_line_before_any_folder(tmp_path: Path) -> None:
    """logger.mlflow.tracking_uri names a server on a closed port. Catches: no connection probe (MLflow's
    HTTP retries run for minutes before the first traceback) and the config key not read (the probe
    looks only at MLFLOW_TRACKING_URI)."""
    runs = tmp_path / "runs"
    uri = f"http://127.0.0.1:{_closed_port()}"
    proc = run_cli("litvision", *FIT, f"logger.mlflow.tracking_uri={uri}", f"paths.runs_dir={runs}")
    one_line_refusal(
        proc, f"logger.mlflow.tracking_uri={uri} cannot be used", "no server answers at 127.0.0.1"
    )
    assert not runs.exists()


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("foo://bar", "MLflow knows no store scheme 'foo'"),
        ("sqlite://relative.db", "three slashes"),
        ("sqlite:///{tmp}/missing/mlflow.db", "does not exist"),
        ("{tmp}/file/mlruns", "is not writable"),
    ],
)
def test_unusable_uris_are_named(tmp_path: Path, uri: str, why: str) -> None:
    """Catches: an unknown scheme or a malformed SQLite URI passed on to MLflow, a store folder that
    does not exist or sits under a file accepted."""
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(UserError, match=why):
        check_store(uri.format(tmp=tmp_path), "MLFLOW_TRACKING_URI")


def test_usable_stores_pass(tmp_path: Path) -> None:
    """Catches a check that refuses what works: a new SQLite file in a writable folder, an existing
    one, a store folder to be made, no URI at all (the run folder's own store), a database server."""
    for uri in (f"sqlite:///{tmp_path}/a.db", f"{tmp_path}/mlruns", None, "postgresql://u@db/mlflow"):
        check_store(uri, "MLFLOW_TRACKING_URI")
    (tmp_path / "a.db").write_bytes(b"")
    check_store(f"sqlite:///{tmp_path}/a.db", "MLFLOW_TRACKING_URI")


@pytest.mark.parametrize(("status", "refused"), [(200, False), (401, False), (404, True)])
def test_a_server_is_asked_for_its_health(status: int, refused: bool) -> None:
    """A local HTTP server answering GET /health with `status`. Catches: any server that accepts the
    connection taken for an MLflow server (a proxy or another web app answering 404), and a server
    that asks for credentials refused (MLflow's client sends them)."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            seen.append(self.path)
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"OK" if status == 200 else b"")

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}/"
        if refused:
            with pytest.raises(
                UserError, match=r"is not an MLflow tracking server \(.*/health gave HTTP 404\)"
            ):
                check_store(uri, "MLFLOW_TRACKING_URI")
        else:
            check_store(uri, "MLFLOW_TRACKING_URI")
        assert seen == ["/health"]
    finally:
        server.shutdown()
        server.server_close()
