"""Exact mid-epoch resume with loader workers: after a pre-emption in the middle of an epoch, a
run with `data.num_workers=2` trains on exactly the batches it had not trained on yet."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import ROOT, compose_cfg

TESTS = Path(__file__).resolve().parent
RESUME = [
    "experiment=digits_cnn",
    "trainer.max_epochs=2",
    "++trainer.limit_train_batches=6",
    "++trainer.limit_val_batches=2",
    "trainer.deterministic=true",
    "data.num_workers=2",
    "logger=csv",
    "test=false",
    "callbacks.rich_progress_bar=null",
    "callbacks.model_summary=null",
]


def _seen(path: Path) -> list[tuple[int, int, str]]:
    return [(d["epoch"], d["batch"], d["hash"]) for d in map(json.loads, path.read_text().splitlines())]


@pytest.mark.slow
def test_resume_with_two_workers_sees_exactly_the_batches_not_yet_trained(
    runs_dir: Path, monkeypatch
) -> None:
    """Catches a resumed epoch that starts over (the first batches trained twice: what happened with
    workers before), and one that draws from epoch 0's order (the workers' prefetch ran before
    set_epoch: what wrapping the sampler alone gives)."""
    import torch

    from litvision.callbacks.preemption import STATE_KEY, Preempted
    from litvision.train import train

    monkeypatch.syspath_prepend(str(TESTS))
    # Loader workers are spawned or forked from this process: they import litvision from this checkout.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "src"), str(TESTS)]))
    record = ["+callbacks.record._target_=resume_helpers.RecordBatches"]
    ref_dir, run_dir = runs_dir / "ref", runs_dir / "pre"
    ref_log, run_log = runs_dir / "ref.jsonl", runs_dir / "pre.jsonl"
    train(
        compose_cfg(
            [*RESUME, *record, f"+callbacks.record.path={ref_log}", f"hydra.run.dir={ref_dir}"], runs_dir
        )
    )
    kill = ["+callbacks.kill._target_=scale_helpers.SignalAtStep", "+callbacks.kill.step=8"]
    with pytest.raises(Preempted):
        train(
            compose_cfg(
                [*RESUME, *record, *kill, f"+callbacks.record.path={run_log}", f"hydra.run.dir={run_dir}"],
                runs_dir,
            )
        )
    ckpt = torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)
    assert ckpt[STATE_KEY]["batches_done"] == 3 and ckpt["epoch"] == 1
    before = _seen(run_log)
    assert [(e, b) for e, b, _ in before][-3:] == [(1, 0), (1, 1), (1, 2)]
    train(
        compose_cfg(
            [*RESUME, *record, f"+callbacks.record.path={run_log}", f"hydra.run.dir={run_dir}"], runs_dir
        )
    )
    everything = _seen(run_log)
    reference = _seen(ref_log)
    assert len(reference) == 12
    # The same batches, in the same order, each once: interruption or not.
    assert [h for _, _, h in everything] == [h for _, _, h in reference]
    assert [(e, b) for e, b, _ in everything] == [(e, b) for e, b, _ in reference]
    ref = torch.load(ref_dir / "checkpoints/last.ckpt", weights_only=True)["state_dict"]
    got = torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)["state_dict"]
    for k in ref:
        assert torch.equal(ref[k], got[k]), k
