"""Tiny SQuAD runs through the one loop (peftbench.train.train), 1 process and 2 processes (torchrun, gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support import ROOT, torchrun

SQUAD_DIR = ROOT.parent / "shared" / "data" / "squad"
TINY_QA = [f"data_dir={SQUAD_DIR}", "task.max_length=128", "task.options.doc_stride=32"]
NO_DROPOUT = ["++model.architecture.hidden_dropout_prob=0", "++model.architecture.attention_probs_dropout_prob=0"]

pytestmark = pytest.mark.skipif(not (SQUAD_DIR / "dev-v1.1.json").is_file(),
                                reason=f"real SQuAD files not found at {SQUAD_DIR}")


@pytest.mark.parametrize(("task", "metrics"), [
    ("squad", {"exact_match", "f1"}),
    ("squad_v2", {"exact", "f1", "HasAns_exact", "NoAns_f1", "best_f1", "best_f1_thresh"}),
])
def test_tiny_run_records_squad_metrics(run_tiny, task: str, metrics: set[str]) -> None:
    record = run_tiny(f"task={task}", "method=lora", "budget=r2", *TINY_QA)
    assert record["status"] == "completed" and record["family"] == "extractive_qa"
    final = record["metrics"]["final"]
    assert metrics <= set(final) and {f"test_{m}" for m in metrics} <= set(final)
    assert all(0 <= final[m] <= 100 for m in metrics if not m.endswith("thresh"))
    assert record["data"]["protocol"] == "article_split" and record["data"]["split_seed"] == 42
    assert record["data"]["used"]["validation"] >= 32  # 32 questions, one or more windows each


def run(tmp_path, launcher: list[str], name: str, *extra: str) -> dict:
    args = ["model=tiny_bert", "trainer=tiny", "task=squad", "method=lora", "budget=r2", "task.max_train_samples=64",
            "task.max_eval_samples=45", "trainer.eval_batch_size=4", f"paths.results_dir={tmp_path}",
            f"paths.report_dir={tmp_path / 'reports'}", f"experiment_name={name}", "logger=none", *TINY_QA, *NO_DROPOUT,
            *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*launcher, "-m", "peftbench", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    paths = list((tmp_path / name).rglob("run.json"))
    assert len(paths) == 1, paths
    return json.loads(paths[0].read_text())


@pytest.mark.slow
def test_two_processes_give_the_same_em_and_f1(tmp_path) -> None:
    """With length grouping, where each process pads only its own slice of a global batch: windows padded to
    task.max_length keep the QA loss (a softmax over every position) the same on 1 and 2 processes."""
    two = run(tmp_path, torchrun(2), "two", "trainer.group_by_length=true")
    one = run(tmp_path, [sys.executable], "one", "trainer.group_by_length=true")
    assert (two["world_size"], one["world_size"]) == (2, 1)
    # An odd number of windows in batches of 4 per process: the last batch is padded and its duplicates dropped.
    assert one["data"]["used"]["validation"] % 8 != 0
    for key in ("final", "best"):
        assert two["metrics"][key] == pytest.approx(one["metrics"][key], abs=1e-9), key
    assert [h["train_loss"] for h in two["history"]] == pytest.approx([h["train_loss"] for h in one["history"]],
                                                                      abs=1e-4)
