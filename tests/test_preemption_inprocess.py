"""Pre-emption in this process (callbacks/preemption.py): a real signal mid-epoch checkpoints and
stops with 128 + signum, the resume continues bit-exactly (no loader workers: the fast variant of
tests/test_resume_workers.py), and the pieces it relies on (RNG states, the skipping sampler, the
signal handed back when it comes too late) each do what they say."""

from __future__ import annotations

import json
import random
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_cfg, unreachable_slurm_path

from litvision.callbacks.preemption import (
    STATE_KEY,
    Preempted,
    PreemptionCheckpoint,
    _SkipFirst,
    rng_states,
    set_rng_states,
)

TESTS = Path(__file__).resolve().parent
RUN = [
    "experiment=digits_cnn",
    "trainer.max_epochs=2",
    "++trainer.limit_train_batches=4",
    "++trainer.limit_val_batches=1",
    "model.net.width=4",
    "trainer.deterministic=true",
    "logger=csv",
    "test=false",
    "callbacks.rich_progress_bar=null",
    "callbacks.model_summary=null",
    "callbacks.sample_grid=null",
]


@pytest.fixture(autouse=True)
def _helpers(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(TESTS))  # scale_helpers / resume_helpers, instantiated by Hydra
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)


def _seen(path: Path) -> list[tuple[int, int, str]]:
    return [(d["epoch"], d["batch"], d["hash"]) for d in map(json.loads, path.read_text().splitlines())]


def test_signal_mid_epoch_then_resume_trains_each_batch_once_to_the_same_weights(runs_dir: Path) -> None:
    """Catches: the pre-emption checkpoint not written or written without the batch position / RNG
    states, the exit code not 128 + signum, a resumed epoch that starts over (batches trained twice)
    or skips too many, and RNG states not restored (dropout draws differ: other weights)."""
    from litvision.train import train

    ref_dir, run_dir = runs_dir / "ref", runs_dir / "pre"
    ref_log, run_log = runs_dir / "ref.jsonl", runs_dir / "pre.jsonl"
    record = ["+callbacks.record._target_=resume_helpers.RecordBatches"]
    train(
        compose_cfg(
            [*RUN, *record, f"+callbacks.record.path={ref_log}", f"hydra.run.dir={ref_dir}"], runs_dir
        )
    )
    kill = ["+callbacks.kill._target_=scale_helpers.SignalAtStep", "+callbacks.kill.step=5"]
    with pytest.raises(Preempted) as e:
        train(
            compose_cfg(
                [*RUN, *record, *kill, f"+callbacks.record.path={run_log}", f"hydra.run.dir={run_dir}"],
                runs_dir,
            )
        )
    assert e.value.code == 128 + signal.SIGUSR1
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt[STATE_KEY]["batches_done"] == 2 and ckpt[STATE_KEY]["epoch"] == 1 and ckpt["global_step"] == 6
    assert len(ckpt[STATE_KEY]["rng"]) == 1 and set(ckpt[STATE_KEY]["rng"][0]) >= {"torch", "numpy", "python"}
    assert signal.getsignal(signal.SIGUSR1) is not None  # handlers handed back after the stop
    train(
        compose_cfg(
            [*RUN, *record, f"+callbacks.record.path={run_log}", f"hydra.run.dir={run_dir}"], runs_dir
        )
    )
    assert _seen(run_log) == _seen(ref_log) and len(_seen(ref_log)) == 8
    ref = torch.load(ref_dir / "checkpoints" / "last.ckpt", weights_only=True)
    got = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    for k in ref["state_dict"]:
        assert torch.equal(ref["state_dict"][k], got["state_dict"][k]), k
    # A checkpoint written at an epoch's end holds no batch position (the next epoch starts whole).
    assert got[STATE_KEY]["batches_done"] == 0 and got[STATE_KEY]["epoch"] == 1


def test_rng_states_round_trip_every_generator() -> None:
    """Catches: one of torch / numpy / Python's RNG not saved or not restored, or restored from the
    wrong field."""
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    states = rng_states()
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)], np.random.randn(1))
    torch.manual_seed(9)
    np.random.seed(9)
    random.seed(9)
    set_rng_states(states)
    again = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)], np.random.randn(1))
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1])
    assert expected[2] == again[2] and np.array_equal(expected[3], again[3])
    # Gaussian state (numpy's cached second normal) survives too.
    np.random.seed(4)
    np.random.randn()
    cached = rng_states()
    want = np.random.randn(2)
    set_rng_states(cached)
    assert np.array_equal(np.random.randn(2), want)
    # Only tensors and plain types: the checkpoint loads with weights_only=True.
    buf = __import__("io").BytesIO()
    torch.save(states, buf)
    buf.seek(0)
    assert torch.load(buf, weights_only=True)["python"][0] == states["python"][0]


def test_skip_first_skips_once_and_forwards_everything_else() -> None:
    """Catches: the skip applied to every later epoch, off by one, and the sampler's own attributes
    (set_epoch, len) not reaching the wrapped sampler."""
    from litvision.data.pipeline.samplers import EpochShuffleSampler

    inner = EpochShuffleSampler(range(10), seed=1)
    wrapped = _SkipFirst(inner, 3)
    first = list(inner)
    assert list(wrapped) == first[3:]
    assert list(wrapped) == first  # the next epoch is whole
    assert len(wrapped) == 10 and wrapped.seed == 1
    wrapped.set_epoch(5)
    assert inner.epoch == 5


def test_a_signal_after_training_is_handed_back_not_swallowed() -> None:
    """Catches: a signal that arrived too late to act on (after the last batch) dropped when the
    handlers are restored, and the previous handlers not put back."""
    got: list[int] = []
    previous = signal.signal(signal.SIGUSR2, lambda s, f: got.append(s))
    try:
        cb = PreemptionCheckpoint("unused", signals=["SIGUSR2", int(signal.SIGUSR1)])
        assert cb.signals == [signal.SIGUSR2, signal.SIGUSR1] and cb.path == Path("unused/last.ckpt")
        cb._install()
        signal.raise_signal(signal.SIGUSR2)
        assert got == [] and cb._received == signal.SIGUSR2  # ours only sets the flag
        cb._restore()
        assert got == [signal.SIGUSR2] and cb._received is None
        signal.raise_signal(signal.SIGUSR2)
        assert got == [signal.SIGUSR2, signal.SIGUSR2]  # the previous handler is back
        cb._install()
        signal.raise_signal(signal.SIGUSR2)
        cb.on_exception(None, None, RuntimeError("x"))  # a failing run: nothing is redelivered
        assert got == [signal.SIGUSR2, signal.SIGUSR2]
    finally:
        signal.signal(signal.SIGUSR2, previous)
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)


def test_rng_states_from_another_world_size_warn_and_are_not_applied(runs_dir: Path, tmp_path: Path) -> None:
    """Catches: RNG states of a 2-process run applied to rank 0 of a 1-process resume silently (or
    crashing), instead of a warning that random draws will differ."""
    from litvision.train import train

    run_dir = tmp_path / "run"
    kill = ["+callbacks.kill._target_=scale_helpers.SignalAtStep", "+callbacks.kill.step=1"]
    with pytest.raises(Preempted):
        train(compose_cfg([*RUN, *kill, f"hydra.run.dir={run_dir}"], runs_dir))
    path = run_dir / "checkpoints" / "last.ckpt"
    ckpt = torch.load(path, weights_only=True)
    ckpt[STATE_KEY]["rng"] = ckpt[STATE_KEY]["rng"] * 2
    torch.save(ckpt, path)
    with pytest.warns(UserWarning, match=r"Checkpoint RNG states are from 2 process\(es\), this run has 1"):
        train(compose_cfg([*RUN, f"hydra.run.dir={run_dir}"], runs_dir))


def test_mid_epoch_resume_on_a_loader_that_cannot_skip_warns_and_replays(runs_dir: Path) -> None:
    """The device cache's loader (not a DataLoader) cannot be fast-forwarded: the resume says so, and
    the epoch's first batches are trained again.

    Catches: the warning dropped or the skip attempted on a loader without a batch sampler (a crash)."""
    from litvision.train import train

    run_dir, log = runs_dir / "cached", runs_dir / "cached.jsonl"
    cached = [*RUN, "data.device_cache=true", "+callbacks.record._target_=resume_helpers.RecordBatches"]
    kill = ["+callbacks.kill._target_=scale_helpers.SignalAtStep", "+callbacks.kill.step=5"]
    with pytest.raises(Preempted):
        train(
            compose_cfg(
                [*cached, *kill, f"+callbacks.record.path={log}", f"hydra.run.dir={run_dir}"], runs_dir
            )
        )
    with pytest.warns(
        UserWarning, match=r"cannot be fast-forwarded .*: the first 2 batches of this epoch are seen again"
    ):
        train(compose_cfg([*cached, f"+callbacks.record.path={log}", f"hydra.run.dir={run_dir}"], runs_dir))
    seen = _seen(log)
    assert [(e, b) for e, b, _ in seen] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3)]
    # Lightning counts on from batch 2, but the loader starts the epoch over: its first two batches
    # are trained again in place of the two the run had not reached.
    assert [h for *_, h in seen[6:]] == [h for *_, h in seen[4:6]]


class _NotSubmitit:
    """A previous SIGUSR1 handler that is a bound method of an object outside submitit."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def handle(self, signum, frame) -> None:
        self.calls.append(signum)


@pytest.fixture
def unreachable_scontrol(monkeypatch, tmp_path: Path) -> None:
    """`scontrol` with no controller to answer it, on any machine: the real one where SLURM is installed
    (with an empty config, so even a local test cluster is not reached), else SLURM's clients' stand-in
    from conftest, which fails with their message."""
    if shutil.which("scontrol"):
        monkeypatch.setenv("SLURM_CONF", "/dev/null")
    else:
        monkeypatch.setenv("PATH", unreachable_slurm_path(tmp_path, clients=("scontrol",)))


@pytest.mark.usefixtures("unreachable_scontrol")
def test_requeue_outside_submitit_asks_scontrol_for_this_job_and_reports_a_refusal(monkeypatch) -> None:
    """With no SLURM controller here, the real `scontrol requeue` fails: the failure is a warning
    naming the job (an array job as <array id>_<task id>), and a previous handler that is not
    submitit's is not called.

    Catches: the job id read from the wrong variables, the array form lost, the previous handler
    called for any bound method (not only submitit's), and the scontrol failure raised or swallowed."""
    import lightning as L

    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    other = _NotSubmitit()
    previous = signal.signal(signal.SIGUSR1, other.handle)
    try:
        cb = PreemptionCheckpoint("unused")
        cb._install()
        monkeypatch.setenv("SLURM_JOB_ID", "424242")
        with pytest.warns(UserWarning, match=r"^scontrol requeue 424242 failed: .+"):
            cb._requeue(trainer, signal.SIGUSR1)
        monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
        with pytest.warns(UserWarning, match=r"^scontrol requeue 77_3 failed: .+"):
            cb._requeue(trainer, signal.SIGUSR1)
        assert other.calls == []
        cb._restore()
    finally:
        signal.signal(signal.SIGUSR1, previous)


@pytest.mark.usefixtures("unreachable_scontrol")
@pytest.mark.parametrize(("signame", "requeued"), [("SIGUSR1", True), ("SIGTERM", False)])
def test_under_slurm_a_preemption_signal_requeues_and_sigterm_does_not(
    signame: str, requeued: bool, runs_dir: Path, monkeypatch
) -> None:
    """SLURM sends SIGTERM to a job it is cancelling (or requeueing itself): only the advance-warning
    signals ask for a requeue. Catches: the SIGTERM exception dropped (a cancelled job requeues
    itself), the SLURM check dropped, and the exit code not 128 + the signal received."""
    import warnings

    from litvision.train import train

    monkeypatch.setenv("SLURM_JOB_ID", "424242")
    kill = [
        "+callbacks.kill._target_=scale_helpers.SignalAtStep",
        "+callbacks.kill.step=1",
        f"+callbacks.kill.signame={signame}",
    ]
    with warnings.catch_warnings(record=True) as caught, pytest.raises(Preempted) as e:
        warnings.simplefilter("always")
        train(compose_cfg([*RUN, *kill, f"hydra.run.dir={runs_dir / signame}"], runs_dir))
    assert e.value.code == 128 + getattr(signal, signame)
    asked = [w for w in caught if "scontrol requeue 424242" in str(w.message)]
    assert bool(asked) is requeued, [str(w.message) for w in caught]
