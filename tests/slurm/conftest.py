"""SLURM fixtures: a real single-node cluster started by scripts/slurm/start.sh (root only).

The cluster is left running after the session (start.sh is idempotent and takes ~0.2 s when it is up;
other test sessions in the same machine may be using it); stop it with scripts/slurm/stop.sh.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
START = ROOT / "scripts" / "slurm" / "start.sh"
PACKAGES_UNAVAILABLE = 3  # start.sh's exit status when apt cannot install slurm-wlm/munge
# Every multirun must finish well inside this; a job killed without a result pickle would otherwise hang
# submitit forever (no slurmdbd, so sacct cannot report CANCELLED/FAILED). Generous: the jobs share two cores with
# the other pytest-xdist worker (scripts/test.sh), which may be running two processes of its own.
SWEEP_TIMEOUT_S = 300


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """Start (or reuse) the single-node cluster; returns the node name."""
    if os.geteuid() != 0:
        pytest.skip("SLURM TESTS SKIPPED: scripts/slurm/start.sh must run as root (apt-get, daemons)")
    # The first start installs slurm-wlm and munge (~10 s with package lists present, more with apt-get update).
    done = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    if done.returncode == PACKAGES_UNAVAILABLE:
        pytest.skip(f"SLURM TESTS SKIPPED: cannot install slurm-wlm/munge with apt:\n{output}")
    if done.returncode != 0:
        pytest.fail(f"scripts/slurm/start.sh failed (exit {done.returncode}):\n{output}")
    return subprocess.run(["hostname", "-s"], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def run_sweep(slurm_cluster):
    """Run a Hydra multirun command under a unique SLURM job name, with a hard timeout.

    Returns a function ``run(args, name) -> CompletedProcess``; on timeout it cancels that job name's jobs.
    """

    def run(args: list[str], name: str) -> subprocess.CompletedProcess:
        env = {
            **os.environ,
            "PEFTBENCH_ROOT": str(ROOT),
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "WANDB_MODE": "offline",
            "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": "1",  # two jobs share 2 cores with the rest of the machine
        }
        command = [sys.executable, *args, f"hydra.launcher.name={name}"]
        try:
            done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=SWEEP_TIMEOUT_S)
        except subprocess.TimeoutExpired as error:
            subprocess.run([shutil.which("scancel") or "scancel", f"--name={name}"], check=False)
            pytest.fail(f"multirun did not finish in {SWEEP_TIMEOUT_S} s; cancelled jobs named {name}:\n"
                        f"{_text(error.stdout)[-3000:]}\n{_text(error.stderr)[-3000:]}")
        assert done.returncode == 0, f"multirun failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        return done

    return run


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


@pytest.fixture
def job_name() -> str:
    return f"pbtest_{uuid.uuid4().hex[:8]}"
