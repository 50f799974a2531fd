"""The run lifecycle: refusals before any folder, resume with the run's own config, finished runs
read-only, one process per run folder."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import HELPERS_ENV, ROOT, compose_cfg, one_line_refusal, run_cli, run_folders

FAST = [
    "experiment=digits_cnn",
    "trainer.max_epochs=3",
    "++trainer.limit_train_batches=3",
    "++trainer.limit_val_batches=2",
    "++trainer.limit_test_batches=2",
    "trainer.deterministic=true",
    "logger=csv",
    "callbacks.rich_progress_bar=null",
    "callbacks.model_summary=null",
    "callbacks.sample_grid=null",
]


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run started with data.batch_size=16 that crashed at the start of epoch 1 (no summary.json)."""
    from litvision.train import train

    runs = tmp_path_factory.mktemp("interrupted")
    cfg = compose_cfg(
        [
            *FAST,
            "data.batch_size=16",
            "+callbacks.crash._target_=conftest.CrashAtEpochStart",
            "+callbacks.crash.epoch=1",
        ],
        runs,
    )
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg)
    (run,) = run_folders(runs)
    assert not (run / "summary.json").exists() and (run / "checkpoints" / "last.ckpt").is_file()
    return run


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from litvision.train import train

    runs = tmp_path_factory.mktemp("finished")
    summary = train(compose_cfg([*FAST, "trainer.max_epochs=1"], runs))
    return Path(summary["run_dir"])


# -- bad input: one line, exit 2, no run folder ---------------------------------------------------
BAD_INPUTS = [
    (["trainer.max_epochs=abc"], "trainer.max_epochs"),
    (["trainer.max_epochs=-5"], "trainer.max_epochs"),
    (["data.batch_size=0"], "data.batch_size"),
    (["data.batch_size=-4"], "data.batch_size"),
    (["data.num_workers=-1"], "data.num_workers"),
    (["model.optimizer.lr=-1"], "model.optimizer.lr"),
    (["model.optimizer.lr=abc"], "model.optimizer.lr"),
    (["data.val_fraction=1.5"], "data.val_fraction"),
    (["trainer.devices=0"], "trainer.devices"),
    (["trainer.num_nodes=0"], "trainer.num_nodes"),
    (["trainer.precision=17"], "trainer.precision"),
    (["trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches"),
    (["trainer.limit_train_batches=1.5"], "trainer.limit_train_batches"),
    (["seed=abc"], "seed"),
    (["monitor_mode=up"], "monitor_mode"),
    (["scale_lr=cubic"], "scale_lr"),
    (["scale_lr=linear"], "base_batch_size"),
    (["trainer=gpu"], "no CUDA GPU"),
    (["trainer=gpu", "debug=fast_dev_run"], "no CUDA GPU"),
    (["trainer.max_epoch=3"], "did you mean trainer.max_epochs?"),
    (["model.optimizer.learning_rate=3"], "model.optimizer.learning_rate"),
    (["experiment=digits_cnnn"], "Unknown experiment"),
    (["trainer=tpu_pod"], "tpu_pod"),
    (["ckpt_path=/nope/last.ckpt"], "Checkpoint not found"),
    (["resume=/"], "not a run folder"),
    # Raised late, inside the DataModule that Hydra's instantiate builds: the new folder is removed.
    (["data=image_folder", "data.root=/no/such/folder"], "/no/such/folder"),
    # Raised inside Lightning's fit, when the cosine schedule finds no end to plan to (was an OverflowError).
    (["trainer.max_epochs=-1"], "trains without an end"),
]


@pytest.mark.parametrize(("args", "needle"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_and_leaves_no_run_folder(args: list[str], needle: str, tmp_path: Path) -> None:
    """Catches: a check dropped from lifecycle/checks.py, or a late refusal that leaves its folder."""
    runs = tmp_path / "runs"
    proc = run_cli("litvision", "fit", *args, f"paths.runs_dir={runs}", timeout=300)
    one_line_refusal(proc, needle)
    assert not runs.exists() or not any(runs.rglob("*")), sorted(runs.rglob("*"))


def test_unwritable_runs_folder_is_one_line(tmp_path: Path) -> None:
    runs = tmp_path / "file_not_folder"
    runs.write_text("x")
    proc = run_cli("litvision", "fit", f"paths.runs_dir={runs}/runs", timeout=300)
    one_line_refusal(proc, str(runs))


def test_user_error_nested_in_instantiate_reaches_the_boundary_unwrapped() -> None:
    """Catches: the boundary looking only one level into Hydra's InstantiationException."""
    from hydra.errors import InstantiationException

    from litvision.errors import UserError, find_user_error

    inner = UserError("data.root=/x does not exist")
    try:
        try:
            try:
                raise inner
            except UserError as e:
                raise InstantiationException("Error in call to target 'DataModule'") from e
        except InstantiationException as e:
            raise InstantiationException("Error in call to target 'Task'") from e
    except InstantiationException as outer:
        assert find_user_error(outer) is inner


# -- resume: the run's own config ------------------------------------------------------------------
def test_resume_keeps_the_runs_own_config_and_records_itself(interrupted: Path) -> None:
    """Catches: resume composing the experiment's defaults (batch 64) instead of the run's (16)."""
    before = (interrupted / "config.yaml").read_bytes()
    last = interrupted / "checkpoints" / "last.ckpt"
    proc = run_cli("litvision.train", f"ckpt_path={last}", env=HELPERS_ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((interrupted / "summary.json").read_text())
    assert summary["run_dir"] == str(interrupted) and summary["epochs_completed"] == 3
    assert summary["resumes"] == 1
    assert (interrupted / "config.yaml").read_bytes() == before
    import yaml

    record = yaml.safe_load((interrupted / "resume-1.yaml").read_text())
    assert record["checkpoint"] == str(last) and record["changed"] == {}
    # The resumed process trained with the run's batch size (the experiment's default is 64).
    assert summary["global_batch_size"] == 16


def test_resume_with_a_changed_key_outside_the_allowed_set_is_refused(tmp_path: Path) -> None:
    from litvision.train import train

    runs = tmp_path / "runs"
    cfg = compose_cfg(
        [*FAST, "+callbacks.crash._target_=conftest.CrashAtEpochStart", "+callbacks.crash.epoch=1"], runs
    )
    with pytest.raises(RuntimeError):
        train(cfg)
    (run,) = run_folders(runs)
    before = _digest(run)
    proc = run_cli(
        "litvision", "fit", f"resume={run}", "model.optimizer.lr=0.5", env=HELPERS_ENV, timeout=300
    )
    one_line_refusal(proc, "model.optimizer.lr", "0.003", "0.5")
    assert _digest(run) == before, "a refused resume writes nothing"

    # An allowed change (more epochs) goes through and is recorded with both values.
    proc = run_cli("litvision", "fit", f"resume={run}", "trainer.max_epochs=4", env=HELPERS_ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import yaml

    record = yaml.safe_load((run / "resume-1.yaml").read_text())
    assert record["changed"] == {"trainer.max_epochs": {"from": 3, "to": 4}}
    assert json.loads((run / "summary.json").read_text())["epochs_completed"] == 4


def test_finished_run_is_read_only_and_a_new_run_starts_from_it(finished: Path, tmp_path: Path) -> None:
    """The fork trains with the finished run's own overrides plus the new ones, in a new folder.
    Catches: training inside a finished run's folder (rewriting summary.json, config.yaml, .hydra/),
    a fork that ignores the finished run's overrides (`base = []` for a fork: it trains full digits
    epochs, not 3 batches), and a merge that drops a new value for a key the run set
    (`trainer.max_epochs=2` lost: the extension is refused)."""
    before = _digest(finished)
    runs = tmp_path / "runs"
    proc = run_cli(
        "litvision", "fit", f"resume={finished}", "trainer.max_epochs=2", f"paths.runs_dir={runs}",
        env=HELPERS_ENV, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _digest(finished) == before
    (new,) = run_folders(runs)
    assert "finished and read-only" in proc.stderr and str(new) in proc.stderr
    summary = json.loads((new / "summary.json").read_text())
    assert summary["started_from"]["run"] == str(finished) and summary["epochs_completed"] == 2
    # The parent's `++trainer.limit_train_batches=3`: one more epoch of 3 steps after its 3.
    assert summary["global_step"] == 6, summary["global_step"]
    import yaml

    config = yaml.safe_load((new / "config.yaml").read_text())
    assert config["trainer"]["limit_train_batches"] == 3 and config["trainer"]["max_epochs"] == 2
    assert config["trainer"]["deterministic"] is True and config["logger"].keys() == {"csv"}

    # Pointing a new command at the finished folder itself is refused.
    proc = run_cli("litvision", "fit", f"hydra.run.dir={finished}", env=HELPERS_ENV, timeout=300)
    one_line_refusal(proc, "finished run")
    assert _digest(finished) == before


def test_two_resumes_of_one_run_at_once_one_is_refused(tmp_path: Path) -> None:
    """Catches: a missing or non-exclusive run-folder lock."""
    from litvision.train import train

    runs = tmp_path / "runs"
    slow = [
        "+callbacks.slow._target_=scale_helpers.SlowTraining",
        f"+callbacks.slow.marker={tmp_path / 'started'}",
        "+callbacks.slow.seconds=0.3",
    ]
    cfg = compose_cfg(
        [*FAST, *slow, "+callbacks.crash._target_=conftest.CrashAtEpochStart", "+callbacks.crash.epoch=1"],
        runs,
    )
    with pytest.raises(RuntimeError):
        train(cfg)
    (run,) = run_folders(runs)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **HELPERS_ENV}
    first = subprocess.Popen(
        [sys.executable, "-m", "litvision", "fit", f"resume={run}", "trainer.max_epochs=40"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 300
        while not (run / "resume-1.yaml").exists() and first.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert first.poll() is None, first.communicate()[1][-3000:]
        second = run_cli(
            "litvision", "fit", f"resume={run}", "trainer.max_epochs=40", env=HELPERS_ENV, timeout=300
        )
        one_line_refusal(second, "is being trained by pid")
        assert first.poll() is None, "the refused resume must not disturb the running one"
        assert not (run / "resume-2.yaml").exists()
    finally:
        first.kill()
        first.communicate()


def test_resume_of_a_folder_that_is_no_run_is_refused(tmp_path: Path) -> None:
    proc = run_cli("litvision", "fit", f"resume={tmp_path}", timeout=300)
    one_line_refusal(proc, "not a run folder")


def test_a_runs_hydra_folder_belongs_to_its_run(finished: Path) -> None:
    """`<run>/.hydra` (it holds a config.yaml too) names its run, not a run of its own (break: drop the
    .hydra guard in run_folder.is_run_folder)."""
    from litvision.lifecycle import run_folder

    assert not run_folder.is_run_folder(finished / ".hydra")
    assert run_folder.owning_run(finished / ".hydra") == finished.resolve()
    assert run_folder.owning_run(finished / ".hydra" / "config.yaml") == finished.resolve()


# -- structure -------------------------------------------------------------------------------------
def test_cli_help_lists_every_command() -> None:
    proc = run_cli("litvision", "--help", check=True)
    for name in ("fit", "test", "predict", "list", "compare", "sweep", "submit"):
        assert f"  {name} " in proc.stdout, name
        sub = run_cli("litvision", name, "--help", check=True)
        assert "usage" in sub.stdout.lower(), name


# -- checkpoints: one safe loader behind every command ----------------------------------------------
@pytest.mark.parametrize(
    ("command", "extra"),
    [
        ("fit", []),  # start from / resume a checkpoint
        ("test", []),
        ("predict", ["input={images}"]),
        ("fit", ["model.net.weights={ckpt}"]),  # weights as initialisation
    ],
    ids=["fit-ckpt_path", "test", "predict", "fit-weights"],
)
def test_payload_checkpoint_is_refused_by_every_command(
    command: str, extra: list[str], tmp_path: Path
) -> None:
    """Catches: any command loading a checkpoint with weights_only=False (the payload would run)."""
    from test_safe_load import write_payload_checkpoint

    marker = tmp_path / "pwned"
    ckpt = write_payload_checkpoint(tmp_path / "payload.ckpt", marker)
    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image

    Image.new("L", (8, 8)).save(images / "0.png")
    args = [a.format(images=images, ckpt=ckpt) for a in extra]
    if not any(a.startswith("model.net.weights") for a in args):
        args.append(f"ckpt_path={ckpt}")
    runs = tmp_path / "runs"
    proc = run_cli(
        "litvision", command, "experiment=digits_cnn", *args, f"paths.runs_dir={runs}", env=HELPERS_ENV
    )
    line = one_line_refusal(proc, str(ckpt))
    assert "refuses to execute code" in line
    assert not marker.exists()
    assert not runs.exists() or not any(runs.rglob("*"))


def test_checkpoint_of_another_experiment_is_one_line(finished: Path, tmp_path: Path) -> None:
    """Catches: a state-dict mismatch traceback when testing digits weights on the shapes detector."""
    last = finished / "checkpoints" / "last.ckpt"
    runs = tmp_path / "runs"
    proc = run_cli(
        "litvision",
        "test",
        "experiment=yolov1_shapes",
        f"ckpt_path={last}",
        f"paths.runs_dir={runs}",
        env=HELPERS_ENV,
    )
    one_line_refusal(proc, "digits_cnn", "yolov1_shapes")
    assert not runs.exists() or not any(runs.rglob("*"))


def test_tune_under_ddp_is_one_line_and_leaves_no_folder(tmp_path: Path) -> None:
    """Catches: the tuner's DDP refusal running after the lifecycle made the tune folder."""
    runs = tmp_path / "runs"
    proc = run_cli("litvision", "tune", "trainer=ddp_cpu", f"paths.runs_dir={runs}", timeout=300)
    one_line_refusal(proc, "tune runs on one device", "trainer.devices=2")
    assert not runs.exists() or not any(runs.rglob("*"))
