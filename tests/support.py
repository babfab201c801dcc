"""Helpers shared by the test modules (imported as ``support``: a ``conftest`` import would be ambiguous,
since tests/slurm and tests/analysis have conftest files of their own)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
GLUE_DIR = ROOT.parent / "shared" / "data" / "glue"


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


# Schedules given in optimizer steps must fit the tiny runs' 6 steps.
TINY_METHOD_OVERRIDES = {"adalora": ["method.t_i=1", "method.t_f=2", "method.delta_t=1"]}


def tiny_overrides(tmp_path: Path, *extra: str) -> list[str]:
    method = next((e.split("=", 1)[1] for e in extra if e.startswith("method=")), None)
    return [*TINY_METHOD_OVERRIDES.get(method, []), "model=tiny_bert", "trainer=tiny",
            f"paths.results_dir={tmp_path / 'results'}", "experiment_name=test", "task.max_train_samples=48",
            "task.max_eval_samples=32", *extra]


def free_port() -> int:
    """A TCP port free on localhost now, for torchrun's ``--master_port``: tests run in parallel (pytest-xdist)
    and other sessions on the machine may run torchrun too, so no fixed port. The kernel picks it (bind to
    port 0); torchrun binds it again a moment later, so another process taking it in between is possible but
    unlikely (ephemeral ports are handed out in turn, not reused at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("", 0))  # every interface, as torchrun's store binds
        return probe.getsockname()[1]


def torchrun(processes: int = 2) -> list[str]:
    """The torchrun command line for ``processes`` local CPU processes on a free master port."""
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
            "--master_port", str(free_port())]
