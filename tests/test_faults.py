"""Faults: non-finite loss, out-of-memory, and a Hydra sweep with one failing job (continue, then redo it)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from support import ROOT


def record_of(tmp_path: Path) -> dict:
    (path,) = tmp_path.rglob("run.json")
    return json.loads(path.read_text())


def logged_steps(tmp_path: Path) -> list[int]:
    (path,) = tmp_path.rglob("metrics.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [row["step"] for row in rows if "train/loss" in row]


def test_diverging_run_is_failed_naming_the_non_finite_loss_and_its_step(run_tiny, tmp_path) -> None:
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        run_tiny("trainer.lr=1e30")  # the second step's update (lr warms up from 0) blows the weights up
    record = record_of(tmp_path)
    assert record["status"] == "failed" and record["finished_at"] is not None
    assert record["failure"]["type"] == "FloatingPointError"
    found = re.fullmatch(r"non-finite loss (nan|inf|-inf) at optimizer step (\d+)", record["failure"]["message"])
    assert found, record["failure"]["message"]
    step = int(found.group(2))
    assert 1 < step <= 6
    assert logged_steps(tmp_path) == list(range(1, step))  # the named step is the first one never completed


def test_nan_from_the_first_forward_is_failed_at_step_one(run_tiny, tmp_path, monkeypatch) -> None:
    import peftbench.train as train

    setup = train.setup

    def poisoned(*args, **kwargs):
        parts = setup(*args, **kwargs)

        def nan_loss(module, inputs, output):
            if output.loss is not None:  # evaluation passes no labels, so has no loss
                output.loss = output.loss * float("nan")
            return output

        parts.model.register_forward_hook(nan_loss)
        return parts

    monkeypatch.setattr(train, "setup", poisoned)
    with pytest.raises(FloatingPointError):
        run_tiny()
    record = record_of(tmp_path)
    assert record["status"] == "failed"
    assert record["failure"]["message"] == "non-finite loss nan at optimizer step 1"
    assert "FloatingPointError" in record["failure"]["traceback"]


def test_out_of_memory_is_recorded_failed_with_its_type(run_tiny, tmp_path, monkeypatch) -> None:
    step = torch.optim.AdamW.step
    calls = {"n": 0}

    def exhausting(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", exhausting)
    with pytest.raises(torch.OutOfMemoryError):
        run_tiny()
    record = record_of(tmp_path)
    assert record["status"] == "failed"
    assert record["failure"]["type"] == "OutOfMemoryError"
    assert "out of memory" in record["failure"]["message"]
    assert record["wall_time_s"] is not None and "metrics" not in record
    assert logged_steps(tmp_path) == [1]


# A sweep whose job with seed $NAN_SEED gets a NaN loss from its first step (a forward hook on the model).
SWEEP_DRIVER = """
import os, sys
import peftbench.train as train

bad = os.environ.get("NAN_SEED")
setup = train.setup

def poisoned(run, *args, **kwargs):
    parts = setup(run, *args, **kwargs)
    if bad is not None and run.seed == int(bad):
        def nan_loss(module, inputs, output):
            if output.loss is not None:
                output.loss = output.loss * float("nan")
            return output
        parts.model.register_forward_hook(nan_loss)
    return parts

train.setup = poisoned
from peftbench.cli import main
main(sys.argv[1:])
"""


def sweep(tmp_path: Path, nan_seed: int | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("NAN_SEED", None)
    if nan_seed is not None:
        env["NAN_SEED"] = str(nan_seed)
    args = ["-m", "seed=1,2,3", "model=tiny_bert", "trainer=tiny", "task.max_train_samples=32",
            "task.max_eval_samples=32", "trainer.max_steps=4", "trainer.eval_every=2", "experiment_name=sweep",
            f"paths.results_dir={tmp_path / 'results'}", f"paths.log_dir={tmp_path / 'logs'}"]
    return subprocess.run([sys.executable, "-c", SWEEP_DRIVER, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def records_by_seed(tmp_path: Path) -> dict[int, tuple[Path, dict]]:
    found = {}
    for path in (tmp_path / "results" / "sweep").rglob("run.json"):
        record = json.loads(path.read_text())
        found[record["seed"]] = (path, record)
    return found


@pytest.mark.slow
def test_sweep_continues_past_a_failed_job_and_a_rerun_redoes_only_it(tmp_path) -> None:
    first = sweep(tmp_path, nan_seed=2)
    # Hydra's basic launcher runs every job of the sweep, then re-raises the first failure: exit code 1, so a
    # script or CI step sees that the sweep is incomplete, while every other job has finished.
    assert first.returncode != 0, first.stderr[-3000:]
    assert "Error executing job with overrides" in first.stderr and "seed=2" in first.stderr
    runs = records_by_seed(tmp_path)
    assert sorted(runs) == [1, 2, 3]
    assert {seed: record["status"] for seed, (_, record) in runs.items()} == {1: "completed", 2: "failed",
                                                                              3: "completed"}
    assert runs[2][1]["failure"]["message"] == "non-finite loss nan at optimizer step 1"
    before = {seed: (path.stat().st_mtime_ns, path.read_bytes()) for seed, (path, _) in runs.items()}

    second = sweep(tmp_path, nan_seed=None)  # the same sweep once the cause is fixed
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count("skipping") == 2
    again = records_by_seed(tmp_path)
    assert {seed: path for seed, (path, _) in again.items()} == {seed: path for seed, (path, _) in runs.items()}
    for seed in (1, 3):  # completed runs untouched, byte for byte
        path = again[seed][0]
        assert (path.stat().st_mtime_ns, path.read_bytes()) == before[seed]
    redone = again[2][1]
    assert redone["status"] == "completed" and redone["failure"] is None
    assert redone["started_at"] >= runs[2][1]["started_at"] and again[2][0].read_bytes() != before[2][1]
    assert [entry["step"] for entry in redone["history"]] == [2, 4]
