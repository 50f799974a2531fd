"""Offline W&B runs, read back from wandb's own transaction log: config, tags, group, metrics,
media, model artifact; resume continues the same W&B run; no secret lands in a run folder;
a W&B sweep file drives the real `wandb agent` command construction."""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import compose_cfg, run_cli, run_folders

from litvision.tracking.offline import offline_runs

FAKE_KEY = "fakekey-" + secrets.token_hex(16)
# One tiny digits_cnn run: 1 epoch of 4 batches, every step logged.
TINY = [
    "experiment=digits_cnn",
    "debug=limit",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=4",
    "trainer.log_every_n_steps=1",
    "callbacks.rich_progress_bar=null",
    "callbacks.model_summary=null",
]


def _wandb_env(tmp: Path) -> dict[str, str]:
    # A fake key: it must never be written anywhere; WANDB_MODE=offline keeps wandb off the network.
    return {
        "WANDB_API_KEY": FAKE_KEY,
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_CONFIG_DIR": str(tmp / "wandb_config"),
        "WANDB_CACHE_DIR": str(tmp / "wandb_cache"),
        "WANDB_DATA_DIR": str(tmp / "wandb_data"),
        # wandb's per-user files (~/.netrc from a login, ~/.config/wandb, ~/.cache/wandb) land here too.
        "HOME": str(tmp / "home"),
    }


def _assert_no_secret(folder: Path, *outputs: str) -> None:
    """No file under `folder` (the run folder, wandb's config/cache/data dirs and HOME all live under
    it) and no captured stdout/stderr holds the API key."""
    leaks = [p for p in folder.rglob("*") if p.is_file() and FAKE_KEY.encode() in p.read_bytes()]
    assert not leaks, f"the API key was written to {leaks}"
    assert not [o for o in outputs if FAKE_KEY in o], "the API key was printed"


@contextlib.contextmanager
def _captured_output(path: Path):
    """Everything printed while the block runs goes to `path`: sys.stdout/sys.stderr, and file
    descriptors 1 and 2 (C code, and the wandb service process started meanwhile)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(path, "w", buffering=1) as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            with contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
                yield
        finally:
            f.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


@pytest.fixture(scope="module")
def wandb_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One in-process offline W&B run with `logger=many`, a user tag and log_model=true."""
    from litvision.train import train

    tmp = tmp_path_factory.mktemp("wandb")
    runs_dir = tmp / "runs"
    overrides = [*TINY, "logger=many", "logger.wandb.log_model=true", "tags=[small_cnn,digits,smoke]"]
    with pytest.MonkeyPatch.context() as mp:
        for k, v in _wandb_env(tmp).items():
            mp.setenv(k, v)
        mp.delenv("WANDB_RUN_ID", raising=False)
        with _captured_output(tmp / "output.txt"):
            summary = train(compose_cfg(overrides, runs_dir))
    return {
        "tmp": tmp,
        "runs_dir": runs_dir,
        "overrides": overrides,
        "summary": summary,
        "run_dir": Path(summary["run_dir"]),
    }


def test_offline_run_holds_config_tags_group_and_final_metrics(wandb_run: dict) -> None:
    """The offline run holds the config, tags, group, metrics, figures and model artifact, and the API
    key is in none of the run's output, run folder, wandb config/cache/data dirs or HOME.
    Catches: the key printed (a debug line in build_logger showed it in the captured output)."""
    run_dir = wandb_run["run_dir"]
    summary = json.loads((run_dir / "summary.json").read_text())
    [run] = offline_runs(run_dir)

    assert run.run_id == (run_dir / "wandb_run_id").read_text().strip()
    assert run.project == "litvision"
    assert run.group == "digits_cnn"
    assert run.name == f"digits_cnn_{run_dir.name}"
    assert run.tags == ["small_cnn", "digits", "smoke"]
    assert run.exit_code == 0

    # The run config is the resolved config.yaml, key for key (Lightning's hparams kept apart).
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    config = {k: v for k, v in run.config.items() if k not in ("_wandb", "hparams")}
    assert config == resolved
    assert run.config["hparams"]["optimizer"]["lr"] == resolved["model"]["optimizer"]["lr"]

    # The final W&B summary holds the same metrics as summary.json (best checkpoint, val and test).
    metrics = {**summary["best_val"], **summary["test"]}
    assert set(metrics) >= {"val/acc", "val/loss", "test/acc", "test/f1"}
    for name, value in metrics.items():
        assert math.isclose(run.summary[name], value, rel_tol=1e-9), name
    assert run.summary["trainer/global_step"] == summary["global_step"]

    # Metrics in history under DESIGN.md names, with the trainer step.
    train_rows = [h for h in run.history if "train/loss" in h]
    assert [h["trainer/global_step"] for h in train_rows] == list(range(summary["global_step"]))
    # Figures reach W&B: the confusion matrices, as image files inside the offline run.
    for tag in ("val/confusion_matrix", "test/confusion_matrix", "train/samples"):
        images = [h[tag] for h in run.history if tag in h]
        assert images and images[0]["_type"] == "image-file", tag
        assert (run.path.parent / "files" / images[0]["path"]).stat().st_size > 1000, tag

    # log_model=true: the checkpoints as a model artifact, the best one aliased "best".
    models = [a for a in run.artifacts if a["type"] == "model"]
    assert any("best" in a["aliases"] for a in models), run.artifacts
    assert all(a["files"] == ["model.ckpt"] for a in models)
    output = (wandb_run["tmp"] / "output.txt").read_text(errors="replace")
    assert "W&B offline" in output  # the capture saw the run's own output
    _assert_no_secret(wandb_run["tmp"], output)


def test_resume_continues_the_same_wandb_run(tmp_path: Path) -> None:
    """An interrupted run (crashed at the start of epoch 1) resumed through the CLI logs to the same
    W&B run. Catches: a new run id on resume, or the resume starting the steps over; and the API key
    printed (a debug line in build_logger) or written anywhere under tmp_path (run, wandb dirs, HOME)."""
    import wandb

    from litvision.train import train

    runs_dir = tmp_path / "runs"
    overrides = [
        *TINY,
        "logger=many",
        "trainer.max_epochs=2",
        "+callbacks.crash._target_=conftest.CrashAtEpochStart",
        "+callbacks.crash.epoch=1",
    ]
    with pytest.MonkeyPatch.context() as mp:
        for k, v in _wandb_env(tmp_path).items():
            mp.setenv(k, v)
        mp.delenv("WANDB_RUN_ID", raising=False)
        with pytest.raises(RuntimeError, match="simulated crash"):
            train(compose_cfg(overrides, runs_dir))
        wandb.finish(exit_code=1)  # the crashed process would have ended its W&B run by dying
    (run_dir,) = run_folders(runs_dir)
    first_id = (run_dir / "wandb_run_id").read_text().strip()
    done_steps = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]

    proc = run_cli(
        "litvision.train",
        f"resume={run_dir}",
        env={**_wandb_env(tmp_path), "PYTHONPATH": str(Path(__file__).parent)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [p for p in runs_dir.rglob("summary.json")] == [run_dir / "summary.json"], (
        "resume must continue in the same run folder"
    )
    first, second = offline_runs(run_dir)
    assert first.run_id == second.run_id == first_id
    assert second.name == first.name and second.group == first.group
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs_completed"] == 2
    steps = [h["trainer/global_step"] for h in second.history if "train/loss" in h]
    assert steps and min(steps) == done_steps, "the resumed run continues the steps"
    assert math.isclose(second.summary["test/acc"], summary["test"]["test/acc"], rel_tol=1e-9)
    _assert_no_secret(tmp_path, proc.stdout, proc.stderr)


def test_no_api_key_means_offline_inside_the_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from litvision.tracking.modes import has_api_key, resolve_mode

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert not has_api_key() and resolve_mode(None) == "offline"
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password 0123456789\n")
    assert has_api_key() and resolve_mode(None) == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_mode(None) == "offline"
    assert resolve_mode("disabled") == "disabled"


def test_bad_wandb_mode_is_a_clear_error(runs_dir: Path) -> None:
    from litvision.build import build_loggers
    from litvision.errors import UserError

    with pytest.raises(UserError, match="logger.wandb.mode='ofline' is not a W&B mode; use online, offline"):
        build_loggers(compose_cfg(["logger=wandb", "logger.wandb.mode=ofline"], runs_dir))


def test_wandb_sweep_file_runs_through_wandb_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make wandb-sweep` writes a valid sweep; wandb's own agent code turns a suggestion into our command."""
    from wandb.wandb_agent import Agent

    from litvision.tracking.sweep import check_sweep, load_or_write

    path = tmp_path / "sweep.yaml"
    proc = run_cli("litvision.tracking.sweep", "--exp", "digits_cnn", "--sweep", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "W&B is offline here" in proc.stdout and "wandb sweep" in proc.stdout
    sweep, _, written = load_or_write("digits_cnn", path)
    assert not written and sweep["parameters"]["model.optimizer.lr"]["distribution"] == "log_uniform_values"
    check_sweep(sweep, "digits_cnn", str(path))

    runs_dir = tmp_path / "runs"
    for k, v in _wandb_env(tmp_path).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_RUN_ID", "")  # restored after the agent sets it
    monkeypatch.setenv("WANDB_SWEEP_PARAM_PATH", "")
    # `${interpreter}` is `python` on PATH, as when the agent runs in litvision's environment.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    # Fixed overrides for a tiny run go before the swept ones, as a user would edit the file.
    command = list(sweep["command"])
    command[-1:-1] = [*TINY[1:], "logger=wandb", f"paths.runs_dir={runs_dir}"]
    agent = Agent(api=None, queue=None, sweep_id="sweep1")
    agent._sweep_command = command
    agent._command_run(
        {
            "run_id": "agentrun1",
            "program": sweep["program"],
            "args": {"model.optimizer.lr": {"value": 0.005}, "model.net.width": {"value": 16}},
        }
    )
    assert agent._run_processes["agentrun1"].wait(timeout=600) == 0

    [summary_file] = runs_dir.rglob("summary.json")
    run_dir = summary_file.parent
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["model"]["optimizer"]["lr"] == 0.005 and cfg["model"]["net"]["width"] == 16
    [run] = offline_runs(run_dir)
    assert run.run_id == "agentrun1" == (run_dir / "wandb_run_id").read_text().strip()
    assert run.config["model"]["optimizer"]["lr"] == 0.005


def test_bad_sweep_file_names_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "method: grid\nparameters:\n  model.optimiser.lr: {values: [0.1]}\n"
        "command: [python, -m, litvision.train, '${args_no_hyphens}']\n"
    )
    proc = run_cli("litvision.tracking.sweep", "--exp", "digits_cnn", "--sweep", str(bad))
    assert proc.returncode == 2
    assert str(bad) in proc.stderr and "model.optimiser.lr" in proc.stderr
    bad.write_text(
        "method: bayes\nparameters:\n  model.optimizer.lr: {min: 0.1}\ncommand: [python, train.py]\n"
    )
    proc = run_cli("litvision.tracking.sweep", "--exp", "digits_cnn", "--sweep", str(bad))
    assert proc.returncode == 2
    for problem in (
        "metric.name",
        "parameters.model.optimizer.lr",
        "${args_no_hyphens}",
        "-m litvision.train",
    ):
        assert problem in proc.stderr


def test_offline_reader_follows_records_across_blocks_and_checks_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records larger than a 32 KiB block (written by wandb itself) come back whole; corruption is caught."""
    import wandb

    from litvision.tracking.offline import TransactionLogError, load_offline_run

    for k, v in _wandb_env(tmp_path).items():
        monkeypatch.setenv(k, v)
    config = {"blob": "x" * 100_000, "nested": {"values": list(range(2000))}}
    run = wandb.init(dir=tmp_path, mode="offline", id="bigrun01", project="p", config=config)
    for i in range(100):
        run.log({"i": i, "text": f"{i:04d}" * 200})
    run.finish()
    [path] = tmp_path.glob("wandb/offline-run-*/run-bigrun01.wandb")
    assert path.stat().st_size > 4 * 32768
    back = load_offline_run(path)
    assert back.run_id == "bigrun01" and back.exit_code == 0
    assert back.config["blob"] == config["blob"] and back.config["nested"] == config["nested"]
    assert [h["i"] for h in back.history] == list(range(100))
    assert back.history[-1]["text"] == "0099" * 200

    data = bytearray(path.read_bytes())
    data[40_000] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(TransactionLogError, match="checksum mismatch"):
        load_offline_run(path)
