"""Shared fixtures: offline hub, config composition, tiny-model runs in a temporary results folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from support import GLUE_DIR, compose, tiny_overrides  # noqa: F401 - re-exported for fixtures


@pytest.fixture
def glue_dir() -> Path:
    if not GLUE_DIR.is_dir():
        pytest.skip(f"real GLUE files not found at {GLUE_DIR} (they live in ../shared/data/glue beside the repo)")
    return GLUE_DIR


@pytest.fixture
def run_tiny(tmp_path):
    """Train a tiny run in-process and return its record."""
    from peftbench.train import train

    def run(*extra: str) -> dict:
        return train(compose(tiny_overrides(tmp_path, *extra)))

    return run


OUTPUTS = ("results", "reports", "logs")


def _outputs() -> set[Path]:
    root = Path(__file__).resolve().parents[1]
    return {p for folder in OUTPUTS for p in (root / folder).rglob("*") if p.is_file()}


@pytest.fixture(scope="session", autouse=True)
def checkout_stays_clean():
    """Tests write only under temporary folders: the checkout's results/, reports/ and logs/ end as they began."""
    before = _outputs()
    yield
    added = sorted(str(p) for p in _outputs() - before)
    assert not added, f"tests wrote into the checkout: {added[:5]}"


# Longest first: scripts/test.sh runs the test files on two pytest-xdist workers in collection order
# (--dist loadfile --no-loadscope-reorder), each worker taking the next file when it is almost out of work: a
# long file started last would be the run's tail. The stable sort keeps the order of the tests within a file.
FIRST = ("tests/test_learning.py",  # every method on real MiniLM, in two processes: minutes
         "tests/slurm/test_slurm_sweep.py")  # mostly waiting on SLURM jobs: shares the cores well


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        if path in FIRST:
            return FIRST.index(path)
        return len(FIRST) + (0 if item.get_closest_marker("slow") else 1)

    items.sort(key=rank)
