"""Kill a run at several points, rerun the same command, and get a bit-identical record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT

# A child that kills itself: "step N" (SIGKILL right after the N-th optimizer step, before its checkpoint),
# "eval N" (SIGKILL inside the N-th evaluation), "term N" (SIGTERM after the N-th step: graceful stop).
DRIVER = """
import os, signal, sys
import torch
import peftbench.train as train

mode, at, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
calls = {"n": 0}

def when(n):
    calls["n"] += 1
    return calls["n"] == n

if mode == "eval":
    evaluate_sets = train.evaluate_sets
    def killing(*a, **k):
        if when(at):
            os.kill(os.getpid(), signal.SIGKILL)
        return evaluate_sets(*a, **k)
    train.evaluate_sets = killing
else:
    step = torch.optim.AdamW.step
    def stepping(self, *a, **k):
        result = step(self, *a, **k)
        if when(at):
            os.kill(os.getpid(), signal.SIGKILL if mode == "step" else signal.SIGTERM)
        return result
    torch.optim.AdamW.step = stepping

from peftbench.cli import main
main(args)
"""

COMMON = ["model=tiny_bert", "trainer=tiny", "task.max_train_samples=48", "task.max_eval_samples=32",
          "trainer.checkpoint_every=1", "logger=csv"]
ADALORA = ["method=adalora", "budget=r1", "method.t_i=1", "method.t_f=2", "method.delta_t=1"]  # final phase: 5-6


def launch(tmp_path: Path, args: list[str], kill: tuple[str, int] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", DRIVER, *(map(str, kill) if kill else ("none", "0")), *args,
               f"paths.results_dir={tmp_path}", f"paths.report_dir={tmp_path / 'reports'}"]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def record_of(tmp_path: Path, experiment: str) -> dict:
    (path,) = (tmp_path / experiment).rglob("run.json")
    return json.loads(path.read_text())


def comparable(record: dict) -> dict:
    return {key: record[key] for key in ("status", "metrics", "history", "method_records", "parameters",
                                         "total_steps")}


SORA = ["method=sora", "method.threshold=0.05"]  # gates reach zero within the 6 steps
METHODS = {"adalora": ADALORA, "sora": SORA}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    records = {}
    for name, method in METHODS.items():
        out = tmp_path_factory.mktemp(f"straight-{name}")
        result = launch(out, [*COMMON, *method, "experiment_name=straight"])
        assert result.returncode == 0, result.stderr[-3000:]
        records[name] = record_of(out, "straight")
    return records


@pytest.mark.slow
@pytest.mark.parametrize(("method", "kill"), [("adalora", ("step", 2)), ("adalora", ("eval", 2)),
                                              ("adalora", ("step", 5)), ("adalora", ("term", 3)),
                                              ("sora", ("step", 4))],
                         ids=["adalora-sigkill-after-step-2", "adalora-sigkill-during-second-eval",
                              "adalora-sigkill-final-phase-step-5", "adalora-sigterm-step-3", "sora-sigkill-step-4"])
def test_killed_run_resumes_bit_identical(tmp_path, uninterrupted, method, kill) -> None:
    args = [*COMMON, *METHODS[method], "experiment_name=straight"]
    first = launch(tmp_path, args, kill)
    assert first.returncode != 0
    interrupted = record_of(tmp_path, "straight")
    assert interrupted["status"] == ("preempted" if kill[0] == "term" else "running")
    assert (next((tmp_path / "straight").rglob("checkpoint.pt"))).is_file()
    second = launch(tmp_path, args)
    assert second.returncode == 0, second.stderr[-3000:]
    resumed = record_of(tmp_path, "straight")
    assert comparable(resumed) == comparable(uninterrupted[method])
    assert resumed["resumed_at_steps"] and not list((tmp_path / "straight").rglob("checkpoint.pt"))
    rows = [json.loads(line) for line in next((tmp_path / "straight").rglob("metrics.jsonl")).read_text().splitlines()]
    assert [row["step"] for row in rows if "train/loss" in row] == list(range(1, 7))  # each step logged once
