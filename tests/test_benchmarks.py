"""The benchmark scripts run end to end on a tiny model and print their ratio lines (no timing threshold:
figures on a shared CPU are not test material; benchmarks/README.md holds the measured ones)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "tiny_bert", "--steps", "3", "--warmup", "1", "--repeats", "1", "--batch-size", "8",
        "--train-samples", "64"]
RATIO = r"min \d+\.\d{3}  median \d+\.\d{3}  paired-median \d+\.\d{3}  floor \d+\.\d{3}"


def run_script(name: str, *extra: str) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *TINY, *extra], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def test_step_time_prints_ratio():
    out = run_script("step_time.py", "--threads", "1")
    assert "torch threads: 1" in out
    assert re.search(r"trainable parameters: harness ([\d,]+)  bare \1$", out, re.M), out  # same LoRA both sides
    assert re.search(r"^ratio harness/bare: " + RATIO, out, re.M), out


def test_method_overhead_prints_ratios():
    out = run_script("method_overhead.py", "--profile")
    for name in ("adalora dT=1", "adalora dT=100", "sora"):
        assert re.search(rf"^ratio {name}/lora: " + RATIO, out, re.M), out
    assert "adalora dT=100 amortised" in out
    assert "peftbench/methods/sora/" in out  # the profile names the method's own functions


def test_method_overhead_all_times_every_registered_method():
    from peftbench import methods

    out = run_script("method_overhead.py", "--all")
    for name in methods.available():
        if name in ("lora", "adalora"):
            continue
        timed = re.search(rf"^ratio {name}/lora: " + RATIO, out, re.M)
        untimed = re.search(rf"^  {name} +not timed: ", out, re.M)  # QLoRA: tiny_bert has no weights to quantise
        assert timed or (name == "qlora" and untimed), out


def test_whole_run_quick_prints_every_contender():
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "whole_run.py"), "--quick", "--repeats", "1",
                           "--threads", "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    for name in ("peftbench", "trainer", "bare"):  # each finished its 2 steps and scored both sets
        assert re.search(rf"^repeat 1 {name} +wall +\d+\.\d s  peak RSS +\d+ MiB  steps 2  val acc 0\.\d{{4}}  "
                         r"test acc 0\.\d{4}$", done.stdout, re.M), done.stdout
        assert re.search(rf"^ratio {name}/trainer: median \d\.\d{{3}}  ratio {name}/bare: median \d\.\d{{3}}$",
                         done.stdout, re.M), done.stdout


def test_gpu_throughput_cpu_smoke_has_a_row_per_method():
    from peftbench import methods

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_throughput.py"), "--cpu-smoke"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.count("| method | tokens/s | harness ms/step | bare ms/step | harness/bare |") == 2
    number = r"[\d,]+(?:\.\d+)?"
    for name in methods.available():
        if methods.get(name).method.quantization is None:  # QLoRA needs pretrained weights to quantise
            rows = re.findall(rf"^\| {name} \| {number} \| {number} \| {number} \| \d+\.\d{{3}} \| \d+\.\d{{3}} \|",
                              done.stdout, re.M)
            assert len(rows) == 2, done.stdout  # both tiny models, no error


def test_step_clock_leaves_the_last_steps_evaluation_out(monkeypatch):
    """fit logs a second time at an evaluation step, after evaluating; the clock keeps the training stamp, so a
    slow evaluation at fit's last step is not charged to that step."""
    import argparse
    import time

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from common import Harness, add_common_args, run_config

    import peftbench.train

    parser = argparse.ArgumentParser()
    add_common_args(parser, steps=2, repeats=1)
    args = parser.parse_args(TINY)
    harness = Harness(run_config(args, 3, "method=lora"))
    evaluate_step = peftbench.train.evaluate_step

    def slow_evaluation(*positional, **named):
        time.sleep(1.0)
        return evaluate_step(*positional, **named)

    monkeypatch.setattr(peftbench.train, "evaluate_step", slow_evaluation)
    times = harness.time_steps(warmup=1, steps=2)
    assert len(times) == 2 and max(times) < 1000, times
