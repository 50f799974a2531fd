"""A real one-node SLURM cluster (tests/slurm/cluster.sh) for the tests in this folder.

The session fixture installs slurm-wlm and munge when missing (root + apt-get), starts munged,
slurmctld and slurmd, and stops the daemons afterwards. Where that is impossible the tests are
skipped with the script's own reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CLUSTER = Path(__file__).resolve().parent / "cluster.sh"


@pytest.fixture(scope="session")
def slurm_cluster() -> dict[str, str]:
    # Not under pytest's basetemp: the daemons keep their state and job spool here while they run.
    state = Path(tempfile.mkdtemp(prefix="litvision-slurm-"))
    env = {**os.environ, "LITVISION_SLURM_DIR": str(state)}
    proc = subprocess.run(
        ["bash", str(CLUSTER), "start"], env=env, capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["cluster.sh start failed"])[-1]
        if os.geteuid() != 0 or "apt-get" in reason:
            pytest.skip(f"no local SLURM cluster: {reason}")
        raise RuntimeError(f"tests/slurm/cluster.sh start failed:\n{proc.stdout}\n{proc.stderr}")
    # The node name does not resolve on this machine: the DDP rendezvous uses localhost.
    cluster_env = {
        "SLURM_CONF": str(state / "slurm.conf"),
        "MASTER_ADDR": "127.0.0.1",
        "LITVISION_SLURM_DIR": str(state),
    }
    yield cluster_env
    subprocess.run(["bash", str(CLUSTER), "stop"], env=env, capture_output=True, text=True, timeout=120)
    shutil.rmtree(state, ignore_errors=True)
