"""Two "nodes" on one machine, launched as a general cluster launches them (Lightning's own environment:
each node runs the same command with MASTER_ADDR, MASTER_PORT, NODE_RANK and WORLD_SIZE set, one process
per node, gloo), against the same run as one node with two processes.

Cost: two DDP runs of 2 processes, 8 steps each (~40 s on 2 idle cores)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import HELPERS_ENV, ROOT, run_cli, run_folders

STEPS = 8
ARGS = [
    "experiment=digits_cnn",
    "logger=csv",
    "trainer=ddp_cpu",
    "trainer.max_epochs=1",
    f"trainer.limit_train_batches={STEPS}",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "data.batch_size=16",
    "data.num_workers=0",
    "callbacks.rich_progress_bar=null",
    "callbacks.model_summary=null",
    "+callbacks.rank_weights._target_=scale_helpers.SaveRankWeights",
    "+callbacks.seen._target_=scale_helpers.RecordSeenImages",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _record(out: Path) -> list[str]:
    return [f"+callbacks.rank_weights.folder={out}", f"+callbacks.seen.folder={out}"]


def _node(rank: int, port: int, run_dir: Path, out: Path) -> subprocess.Popen:
    """One node of the pair: the command every node of a cluster runs, with its NODE_RANK."""
    env = {
        **os.environ,
        **HELPERS_ENV,
        "PYTHONUNBUFFERED": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "NODE_RANK": str(rank),
        "WORLD_SIZE": "2",
    }
    argv = [*ARGS, "trainer.num_nodes=2", "trainer.devices=1", f"hydra.run.dir={run_dir}", *_record(out)]
    # To a file, not a pipe: a node blocked on a full pipe stalls its peer inside DDP.
    with open(out.parent / f"node{rank}.log", "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "litvision.train", *argv], cwd=ROOT, env=env, stdout=log, stderr=log
        )


def _wait(nodes: list[subprocess.Popen], log_dir: Path, timeout: float) -> list[str]:
    """Both nodes' output. When one node fails, or outlives `timeout`, the other is killed (DDP would wait
    for its peer until gloo's 30-minute timeout); each output so far is kept for the failure message."""
    deadline = time.monotonic() + timeout
    while any(p.poll() is None for p in nodes):
        if time.monotonic() > deadline or any(p.poll() not in (None, 0) for p in nodes):
            for p in nodes:
                p.kill()
            break
        time.sleep(0.5)
    for p in nodes:
        p.wait()
    return [(log_dir / f"node{rank}.log").read_text() for rank in range(len(nodes))]


def _weights(out: Path, rank: int) -> dict[str, torch.Tensor]:
    return torch.load(out / f"rank{rank}.pt", weights_only=True)


@pytest.mark.slow
def test_two_nodes_train_one_run_like_one_node_with_two_processes(tmp_path: Path) -> None:
    """2 nodes x 1 process: one run folder and one summary.json (only node 0's rank zero owns them),
    the two ranks see disjoint halves of the data, end with identical weights, and those are the weights
    of 1 node x 2 processes (same global rank layout, same shards, same all-reduce).

    Catches: a node other than the first taking itself for rank zero (runner.process_rank ignoring
    NODE_RANK: it locks and writes the run folder too, and the lock refuses one node), and
    trainer.num_nodes dropped from the Trainer (each node trains alone on a world of one: both see
    every image, and the weights differ from the 1 x 2 run)."""
    run_dir, two_nodes = tmp_path / "runs" / "two_nodes", tmp_path / "two_nodes_out"
    port = _free_port()
    nodes = [_node(rank, port, run_dir, two_nodes) for rank in (0, 1)]
    outputs = _wait(nodes, tmp_path, timeout=400)
    for rank, (p, out) in enumerate(zip(nodes, outputs)):
        assert p.returncode == 0, f"node {rank} failed ({p.returncode}):\n{out[-4000:]}"

    assert run_folders(tmp_path / "runs") == [run_dir]
    assert len(list((tmp_path / "runs").rglob("summary.json"))) == 1
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["global_step"] == STEPS
    # Node 0's rank zero alone prints the results; node 1 trains silently.
    assert "best checkpoint" in outputs[0] and "best checkpoint" not in outputs[1]

    seen = [set(json.loads((two_nodes / f"seen{r}.json").read_text())) for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == STEPS * 16, [len(s) for s in seen]
    assert not seen[0] & seen[1], "the two nodes trained on the same images"

    w0, w1 = _weights(two_nodes, 0), _weights(two_nodes, 1)
    assert w0.keys() == w1.keys() and len(w0) > 0
    assert all(torch.equal(w0[k], w1[k]) for k in w0), "the nodes ended with different weights"

    one_node = tmp_path / "one_node_out"
    proc = run_cli(
        "litvision.train",
        *ARGS,
        "trainer.devices=2",
        f"paths.runs_dir={tmp_path / 'one_node_runs'}",
        *_record(one_node),
        env=HELPERS_ENV,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert [set(json.loads((one_node / f"seen{r}.json").read_text())) for r in (0, 1)] == seen
    reference = _weights(one_node, 0)
    worst = max((w0[k] - reference[k]).abs().max().item() for k in w0)
    assert worst <= 1e-6, f"2 nodes x 1 and 1 node x 2 ended {worst:.2e} apart"
