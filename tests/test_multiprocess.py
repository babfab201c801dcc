"""Two CPU processes (torchrun, gloo) against one process at the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support import ROOT, torchrun

NO_DROPOUT = ["++model.architecture.hidden_dropout_prob=0", "++model.architecture.attention_probs_dropout_prob=0"]


def run(tmp_path, launcher: list[str], name: str, *extra: str) -> dict:
    args = ["model=tiny_bert", "trainer=tiny", "task.max_train_samples=64", "task.max_eval_samples=64",
            f"paths.results_dir={tmp_path}", f"paths.report_dir={tmp_path / 'reports'}", f"experiment_name={name}",
            *NO_DROPOUT, *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*launcher, "-m", "peftbench", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    paths = list((tmp_path / name).rglob("run.json"))
    assert len(paths) == 1, paths  # only rank 0 writes
    return json.loads(paths[0].read_text())


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path) -> None:
    two = run(tmp_path, torchrun(2), "two", "trainer.group_by_length=true")
    one = run(tmp_path, [sys.executable], "one", "trainer.group_by_length=true")
    assert (two["world_size"], one["world_size"]) == (2, 1)
    assert two["status"] == "completed"
    losses_one = [h["train_loss"] for h in one["history"]]
    losses_two = [h["train_loss"] for h in two["history"]]
    # Same examples per optimizer step (rank r takes every other per-process batch), gradients averaged by DDP:
    # the runs differ only by float summation order.
    assert losses_two == pytest.approx(losses_one, abs=1e-4)
    assert two["metrics"]["final"]["accuracy"] == pytest.approx(one["metrics"]["final"]["accuracy"], abs=1 / 64)
    # Length groups are whole global batches, each rank taking its slice: the same examples and real tokens
    assert two["cost"]["group_by_length"] and two["cost"]["tokens_seen"] == one["cost"]["tokens_seen"]
    assert two["cost"]["examples_seen"] == one["cost"]["examples_seen"]
    print("max |loss difference| 1 vs 2 processes:", max(abs(a - b) for a, b in zip(losses_one, losses_two)))
