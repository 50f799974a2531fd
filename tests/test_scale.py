"""Scale-out on the CPU: DDP (2 gloo processes) through the real CLI, Hydra multirun + DDP, bf16,
pre-emption and exact resume, atomic checkpoints, LR scaling, compile/channels-last, bad input."""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path

import pytest
from conftest import HELPERS_ENV, compose_cfg, run_cli, run_folders

# Subprocesses import tests/scale_helpers.py (SignalAtStep) and litvision from this checkout.
QUIET = ["callbacks.rich_progress_bar=null", "callbacks.model_summary=null"]


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


# -- DDP ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ddp_two_processes_one_run_folder_and_same_metrics_as_one_process(runs_dir: Path) -> None:
    """2 gloo processes x batch 32 against 1 process x batch 64 (the same global batch and lr).

    Tolerance 0.05 on test accuracy: the runs cannot be bit-identical (DistributedSampler draws a
    different order than the 1-process sampler, and BatchNorm sees 32 instead of 64 samples per
    step), so they are two seeds of the same recipe; at 4 epochs digits_cnn sits at ~0.95-0.98 test
    accuracy and seed-to-seed spread is ~0.01-0.02. A broken DDP run (unsynchronised gradients,
    metrics on half the data, each rank training alone) is off by far more, or fails the checks below.
    Catches: gradients not all-reduced (a DDP comm hook returning the local gradient, i.e. each rank
    training alone as an unwrapped model would): the two ranks end with different weights.
    """
    import torch

    from litvision.train import train

    args = ["experiment=digits_cnn", "trainer.max_epochs=4", "logger=csv", *QUIET]
    ranks = runs_dir / "rank_weights"
    proc = run_cli(
        "litvision.train",
        *args,
        "trainer=ddp_cpu",
        "data.batch_size=32",
        f"paths.runs_dir={runs_dir / 'ddp'}",
        "+callbacks.rank_weights._target_=scale_helpers.SaveRankWeights",
        f"+callbacks.rank_weights.folder={ranks}",
        env=HELPERS_ENV,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    folders = run_folders(runs_dir / "ddp")
    assert len(folders) == 1, folders
    run = folders[0]
    assert len(list((runs_dir / "ddp").rglob("summary.json"))) == 1
    assert len(list((runs_dir / "ddp").rglob("metrics.csv"))) == 1
    ddp = _summary(run)
    assert ddp["world_size"] == 2 and ddp["global_batch_size"] == 64
    # Rank zero alone prints: one start panel and one results table for two processes.
    assert proc.stdout.count("litvision train") == 1 and proc.stdout.count("best checkpoint") == 2
    # 1169 training images: 585 per rank, 19 batches of 32 per epoch; the sampler split the data.
    assert ddp["global_step"] == 4 * 19
    # One model trained by two processes: both ranks hold the same weights, bit for bit.
    w0, w1 = (torch.load(ranks / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert w0.keys() == w1.keys() and len(w0) > 0
    differ = [k for k in w0 if not torch.equal(w0[k], w1[k])]
    assert not differ, f"ranks ended with different weights: {differ}"

    one = train(compose_cfg([*args, "trainer=cpu", "data.batch_size=64"], runs_dir / "one"))
    assert abs(ddp["test"]["test/acc"] - one["test"]["test/acc"]) <= 0.05, (ddp["test"], one["test"])
    assert ddp["test"]["test/acc"] > 0.9


def test_multirun_with_ddp_makes_one_folder_per_job(runs_dir: Path) -> None:
    """The lightning-hydra-template bug: a DDP worker re-ran the sweep into a new folder."""
    args = [
        "-m",
        "experiment=digits_cnn",
        "trainer=ddp_cpu",
        "debug=limit",
        "trainer.max_epochs=1",
        "test=false",
        "logger=csv",
        *QUIET,
        "seed=1,2",
        f"paths.runs_dir={runs_dir}",
    ]
    proc = run_cli("litvision.train", *args, env=HELPERS_ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    folders = run_folders(runs_dir)
    assert [f.name for f in folders] == ["0", "1"], folders
    assert len({f.parent for f in folders}) == 1
    for f, seed in zip(folders, (1, 2), strict=True):
        assert _summary(f)["seed"] == seed and _summary(f)["world_size"] == 2
        assert (f / "train_ddp_process_1.log").is_file()  # the worker wrote into this job's folder


# -- precision -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_bf16_mixed_on_cpu_reaches_the_32_bit_accuracy_band(runs_dir: Path) -> None:
    """bf16-mixed computes under autocast (the Conv2d/Linear outputs of the training forward are
    bfloat16, the weights stay float32) and reaches the fp32 accuracy band.
    Catches: trainer.precision ignored (both runs in fp32: outputs float32)."""
    from litvision.train import train

    args = ["experiment=digits_cnn", "trainer.max_epochs=3", "logger=csv", "test=true", *QUIET]
    probe = ["+callbacks.dtypes._target_=scale_helpers.RecordOutputDtypes"]
    dtypes = {p: runs_dir / f"dtypes_{p}.json" for p in ("32-true", "bf16-mixed")}
    full = train(
        compose_cfg(
            [*args, "trainer.precision=32-true", *probe, f"+callbacks.dtypes.path={dtypes['32-true']}"],
            runs_dir,
        )
    )["test"]["test/acc"]
    bf16 = train(
        compose_cfg(
            [*args, "trainer.precision=bf16-mixed", *probe, f"+callbacks.dtypes.path={dtypes['bf16-mixed']}"],
            runs_dir,
        )
    )["test"]["test/acc"]
    print("test/acc fp32", full, "bf16-mixed", bf16)
    seen = {p: json.loads(path.read_text()) for p, path in dtypes.items()}
    assert seen["32-true"] == {"outputs": ["float32"], "params": ["float32"]}, seen
    assert seen["bf16-mixed"] == {"outputs": ["bfloat16"], "params": ["float32"]}, seen
    assert full > 0.9 and bf16 > 0.9, (full, bf16)
    assert abs(full - bf16) <= 0.03, (full, bf16)


# -- pre-emption and resume ------------------------------------------------------------------------
RESUME = [
    "experiment=digits_cnn",
    "trainer.max_epochs=2",
    "++trainer.limit_train_batches=6",
    "++trainer.limit_val_batches=2",
    "trainer.deterministic=true",
    "logger=csv",
    "test=false",
    *QUIET,
]


def test_preemption_signal_mid_epoch_then_resume_gives_the_uninterrupted_weights(runs_dir: Path) -> None:
    """Catches: the pre-emption checkpoint not resumable mid-epoch, and ckpt_path dropped from
    trainer.fit (the second fit starts at step 0 instead of 9)."""
    import torch
    from resume_helpers import fit_starts

    from litvision.callbacks.preemption import STATE_KEY, Preempted
    from litvision.train import train

    ref_dir, run_dir = runs_dir / "ref", runs_dir / "pre"
    train(compose_cfg([*RESUME, f"hydra.run.dir={ref_dir}"], runs_dir))
    # A real SIGUSR1 to this process during step 8 = epoch 1, batch 2 (6 batches per epoch).
    starts = runs_dir.parent / "fit_starts.jsonl"
    kill = [
        "+callbacks.kill._target_=scale_helpers.SignalAtStep",
        "+callbacks.kill.step=8",
        "+callbacks.fit_start._target_=resume_helpers.RecordFitStart",
        f"+callbacks.fit_start.path={starts}",
    ]
    with pytest.raises(Preempted) as stop:
        train(compose_cfg([*RESUME, *kill, f"hydra.run.dir={run_dir}"], runs_dir))
    assert stop.value.code == 128 + signal.SIGUSR1
    assert signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None)  # handlers restored
    ckpt = torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 9 and ckpt[STATE_KEY]["batches_done"] == 3 and ckpt["epoch"] == 1
    assert not (run_dir / "summary.json").exists()

    # Same folder again: the run finds its own last.ckpt and resumes (what a requeued job does).
    resumed = train(compose_cfg([*RESUME, *kill[2:], f"hydra.run.dir={run_dir}"], runs_dir))
    assert resumed["global_step"] == 12 and resumed["run_dir"] == str(run_dir)
    assert [(s["global_step"], s["epoch"]) for s in fit_starts(starts)] == [(0, 0), (9, 1)]
    ref = torch.load(ref_dir / "checkpoints/last.ckpt", weights_only=True)["state_dict"]
    got = torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)["state_dict"]
    assert ref.keys() == got.keys()
    for k in ref:
        assert torch.equal(ref[k], got[k]), k


def test_sigterm_from_the_requeue_is_not_handled_by_lightning_while_the_preempted_run_stops(
    runs_dir: Path, caplog
) -> None:
    """Right after a pre-empted job is requeued, SLURM sends SIGTERM to every task while it stops.
    Lightning's SIGTERM handler runs a `dist.broadcast` that the exiting ranks never join: under DDP it
    hangs or raises "Connection reset by peer", which replaces the pre-emption's SystemExit, and
    submitit pickles it as the old attempt's result (the flaky SLURM requeue test). Here, in one
    process, it shows as Lightning's "Received SIGTERM" line. Catches: PreemptionCheckpoint putting
    Lightning's SIGTERM handler back in on_exception after a pre-emption."""
    from litvision.callbacks.preemption import Preempted
    from litvision.train import train

    args = [
        *RESUME,
        "+callbacks.kill._target_=scale_helpers.SignalAtStep",
        "+callbacks.kill.step=2",
        "+callbacks.sigterm._target_=scale_helpers.SigtermWhileStopping",
        f"hydra.run.dir={runs_dir / 'pre'}",
    ]
    caplog.set_level(logging.INFO, logger="lightning.pytorch.trainer.connectors.signal_connector")
    with pytest.raises(Preempted) as stop:
        train(compose_cfg(args, runs_dir))
    assert stop.value.code == 128 + signal.SIGUSR1
    assert (runs_dir / "pre" / "checkpoints" / "last.ckpt").is_file()
    assert not [r for r in caplog.records if "Received SIGTERM" in r.getMessage()]
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None)  # Lightning's teardown restored it


def test_sigterm_leaves_a_usable_last_ckpt_and_the_cli_resumes_in_the_same_folder(runs_dir: Path) -> None:
    """The resume starts training at the pre-empted step (9), not at 0, and records itself.
    Catches: ckpt_path dropped from trainer.fit (the run restarts at step 0 in the same folder, and
    the replayed SignalAtStep, which spares only a run given a checkpoint, pre-empts it again: 143)."""
    import yaml
    from resume_helpers import fit_starts

    starts = runs_dir.parent / "fit_starts.jsonl"
    args = [
        *RESUME,
        "trainer.max_epochs=3",
        "+callbacks.kill._target_=scale_helpers.SignalAtStep",
        "+callbacks.kill.step=8",
        "+callbacks.kill.signame=SIGTERM",
        "+callbacks.fit_start._target_=resume_helpers.RecordFitStart",
        f"+callbacks.fit_start.path={starts}",
        f"paths.runs_dir={runs_dir}",
    ]
    proc = run_cli("litvision.train", *args, env=HELPERS_ENV, timeout=600)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-3000:]
    (run,) = run_folders(runs_dir)
    last = run / "checkpoints" / "last.ckpt"
    assert last.is_file() and not list(run.glob("checkpoints/.*.tmp"))
    resumed = run_cli(
        "litvision.train",
        f"ckpt_path={last}",
        *RESUME[1:],
        "trainer.max_epochs=3",
        env=HELPERS_ENV,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert run_folders(runs_dir) == [run]
    summary = _summary(run)
    assert summary["global_step"] == 18 and summary["epochs_completed"] == 3
    # Resumed, not restarted: the second fit starts at the checkpoint's step and epoch.
    assert [(s["global_step"], s["epoch"]) for s in fit_starts(starts)] == [(0, 0), (9, 1)]
    record = yaml.safe_load((run / "resume-1.yaml").read_text())
    assert record["checkpoint"] == str(last) and not (run / "resume-2.yaml").exists()


def test_atomic_checkpoint_write_keeps_the_old_file_when_saving_fails(tmp_path: Path, monkeypatch) -> None:
    import torch

    from litvision.utils.checkpoint_io import AtomicCheckpointIO

    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1}, path)
    real_replace = os.replace

    def crash(src, dst):  # the process dies between writing the temporary file and the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2, "big": torch.zeros(1000)}, path)
    monkeypatch.setattr(os, "replace", real_replace)
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


# -- learning-rate scaling, compile, channels-last --------------------------------------------------
def test_linear_lr_scaling_follows_the_global_batch() -> None:
    from types import SimpleNamespace

    from litvision.tasks.optim import lr_scale

    spec = {"rule": "linear", "base_batch_size": 64, "batch_size": 32}
    info = lr_scale(spec, SimpleNamespace(world_size=8, accumulate_grad_batches=2))  # 32 x 8 x 2 = 512
    assert info["global_batch_size"] == 512 and info["lr_scale"] == 8.0
    sqrt = lr_scale({"rule": "sqrt", "base_batch_size": 16, "batch_size": 64}, SimpleNamespace(world_size=1))
    assert sqrt["lr_scale"] == pytest.approx(2.0)
    assert lr_scale({**spec, "rule": None}, SimpleNamespace(world_size=8))["lr_scale"] == 1.0


def test_scaled_lr_reaches_every_group_and_the_config_is_not_mutated(runs_dir: Path) -> None:
    """Catches: scaling applied to the config (then lost, or applied twice) instead of the optimizer."""
    from litvision.train import train

    overrides = [
        "experiment=digits_cnn",
        "scale_lr=sqrt",
        "base_batch_size=16",  # batch 64 on 1 device: ratio 4, sqrt 2
        "+model.param_groups.head.prefixes=[head]",
        "+model.param_groups.head.lr=0.01",
        "trainer.max_epochs=1",
        "++trainer.limit_train_batches=1",
        "++trainer.limit_val_batches=1",
        "test=false",
        "logger=csv",
        *QUIET,
    ]
    cfg = compose_cfg(overrides, runs_dir)
    summary = train(cfg)
    assert summary["lr_scale"] == pytest.approx(2.0) and summary["global_batch_size"] == 64
    assert cfg.model.optimizer.lr == pytest.approx(3e-3) and cfg.model.param_groups.head.lr == 0.01
    import torch

    ckpt = torch.load(summary["last_checkpoint"], map_location="cpu", weights_only=True)
    initial = {g["name"]: g["initial_lr"] for g in ckpt["optimizer_states"][0]["param_groups"]}
    assert initial["default"] == pytest.approx(2 * 3e-3) and initial["head"] == pytest.approx(2 * 0.01)


def test_channels_last_and_compile_switches(runs_dir: Path) -> None:
    import torch

    from litvision.build import build_callbacks
    from litvision.callbacks.performance import PerformanceSwitches
    from litvision.train import train

    cfg = compose_cfg(["experiment=digits_cnn", "compile=true", "channels_last=true"], runs_dir)
    (switch,) = [c for c in build_callbacks(cfg) if isinstance(c, PerformanceSwitches)]
    assert switch.compile and switch.channels_last

    summary = train(
        compose_cfg(["experiment=digits_cnn", "debug=fast_dev_run", "channels_last=true"], runs_dir)
    )
    assert summary["test"]
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3))
    task = torch.nn.Module()
    task.net = net
    PerformanceSwitches(compile=True, channels_last=True).setup(None, task, "fit")
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert net._compiled_call_impl is not None  # nn.Module.compile: compiled in place, same state_dict keys
    assert list(net.state_dict()) == ["0.weight", "0.bias"]


# -- bad input -------------------------------------------------------------------------------------
def test_gpu_preset_without_gpu_is_one_line_before_any_run_folder(runs_dir: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    for preset in ("gpu", "ddp", "multinode"):
        proc = run_cli(
            "litvision.train",
            "experiment=digits_cnn",
            f"trainer={preset}",
            f"paths.runs_dir={runs_dir}",
            env=HELPERS_ENV,
            timeout=300,
        )
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "no CUDA GPU" in lines[0] and "trainer=cpu" in lines[0], proc.stderr
        assert run_folders(runs_dir) == []
        break  # one subprocess is enough for the CLI path; the others go through the same check below
    from litvision.errors import UserError
    from litvision.hardware import check_hardware

    for preset in ("ddp", "multinode"):
        with pytest.raises(UserError, match="no CUDA GPU"):
            check_hardware(compose_cfg(["experiment=digits_cnn", f"trainer={preset}"], runs_dir))


def test_submit_rejects_bad_time_and_missing_slurm(monkeypatch, capsys) -> None:
    from litvision import submit

    assert submit.parse_time("04:00:00") == 240 and submit.parse_time("1-00:00:30") == 1441
    assert submit.parse_time("90") == 90 and submit.parse_time("01:30") == 90
    with pytest.raises(SystemExit) as exit_info:
        submit.main(["--time", "four hours", "--gpus", "0", "experiment=digits_cnn"])
    assert exit_info.value.code == 2
    assert "TIME=four hours is not a SLURM time" in capsys.readouterr().err
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SystemExit) as exit_info:
        submit.main(["--gpus", "1", "experiment=digits_cnn"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "sbatch/sinfo not found" in err and "torchrun" in err
