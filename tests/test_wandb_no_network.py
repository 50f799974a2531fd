"""W&B online without a usable server or key: one warning line and an offline run (or, with
`offline_fallback=false`, one error line), instead of wandb's 90 s wait and a traceback. The
server and proxy here are real local addresses that refuse connections (nothing listens there)."""

from __future__ import annotations

import secrets
import socket
import time
from pathlib import Path

import pytest
from conftest import compose_cfg, run_cli, run_folders

FAKE_KEY = "fakekey-" + secrets.token_hex(16)
TINY = [
    "experiment=digits_cnn",
    "logger=wandb",
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=2",
    "++trainer.limit_val_batches=1",
    "test=false",
    "callbacks.rich_progress_bar=null",
    "callbacks.model_summary=null",
]


def _env(tmp: Path, base_url: str, key: str | None = FAKE_KEY) -> dict[str, str]:
    env = {
        "WANDB_MODE": "online",
        "WANDB_BASE_URL": base_url,
        "WANDB_SILENT": "true",
        "WANDB_CONFIG_DIR": str(tmp / "wandb_config"),
        "WANDB_CACHE_DIR": str(tmp / "wandb_cache"),
        "WANDB_DATA_DIR": str(tmp / "wandb_data"),
        "NETRC": str(tmp / "no_netrc"),
        "WANDB_API_KEY": key or "",
        "HOME": str(tmp / "home"),  # wandb's per-user files, scanned for the key below
    }
    return env


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on return: connecting is refused


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "W&B online logging is not possible" in line]


def test_online_with_the_server_unreachable_logs_offline_after_one_warning(
    runs_dir: Path, tmp_path: Path
) -> None:
    """Breaks if the reachability probe or the fallback goes: wandb then retries for init_timeout
    and raises CommError (a traceback, exit 1). The key given must not reach the output, the run
    folder, wandb's config/cache/data dirs or HOME. Catches: the key printed in build_logger."""
    env = _env(tmp_path, f"http://127.0.0.1:{_closed_port()}")
    proc = run_cli("litvision.train", *TINY, f"paths.runs_dir={runs_dir}", env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = _warnings(proc.stderr)
    assert "unreachable" in line and "wandb sync" in line, line
    (run,) = run_folders(runs_dir)
    assert (run / "summary.json").is_file()
    assert len(list((run / "wandb").glob("offline-run-*"))) == 1
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and FAKE_KEY.encode() in p.read_bytes()]
    assert FAKE_KEY not in proc.stdout and FAKE_KEY not in proc.stderr


def test_online_without_a_key_and_no_fallback_is_one_error_line(runs_dir: Path, tmp_path: Path) -> None:
    """Breaks if the key check goes: wandb raises UsageError ('No API key configured') as a traceback."""
    env = _env(tmp_path, f"http://127.0.0.1:{_closed_port()}", key=None)
    args = [*TINY, "logger.wandb.offline_fallback=false", f"paths.runs_dir={runs_dir}"]
    proc = run_cli("litvision.train", *args, env=env, timeout=600)
    assert proc.returncode == 2, proc.stderr[-3000:]
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert "no W&B API key found" in line and "WANDB_MODE=offline" in line, line
    assert "Traceback" not in proc.stderr


def test_wandb_init_through_an_unreachable_proxy_falls_back_within_init_timeout(
    runs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    """Behind a proxy (HTTPS_PROXY) there is nothing to probe, so `wandb.init` itself must give up: here
    the proxy refuses connections, wandb retries until init_timeout=3 s, and the run goes offline.
    Breaks if init_timeout is not passed to wandb (it retries for 90 s; the bound below is 60 s,
    generous for a loaded machine) or if its CommError is not turned into the fallback."""
    import wandb

    from litvision.build import build_loggers

    for k, v in _env(tmp_path, "https://api.wandb.ai").items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.delenv("WANDB_RUN_ID", raising=False)
    (logger,) = build_loggers(compose_cfg([*TINY, "logger.wandb.init_timeout=3"], runs_dir))
    assert logger._wandb_init["mode"] == "online"  # no probe behind a proxy
    started = time.monotonic()
    try:
        run = logger.experiment
        waited = time.monotonic() - started
        assert run.offline, "the run should have fallen back to offline"
        run.log({"x": 1.0})
        run.finish()
    finally:
        wandb.teardown()
    assert waited < 60, f"W&B fell back after {waited:.0f} s"
    (line,) = _warnings(capfd.readouterr().err)
    assert "wandb.init failed" in line, line


@pytest.mark.parametrize("host", ["api.wandb.ai", "api.forge.coreweave.com"])
def test_a_wandb_login_for_either_default_host_counts_as_a_key(
    host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wandb >= 0.2x logs in to api.forge.coreweave.com. Breaks if only api.wandb.ai is looked up: a
    logged-in user asking for online would be sent offline for 'no W&B API key found'."""
    from litvision.tracking.modes import has_api_key

    for k in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert not has_api_key()
    (tmp_path / "netrc").write_text(f"machine {host}\n  login user\n  password 0123456789\n")
    assert has_api_key()
