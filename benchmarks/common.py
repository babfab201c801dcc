"""Shared pieces of the benchmarks: a validated config, a harness built by ``peftbench.train.setup`` and
timed inside the real ``peftbench.train.fit``, and the summary figures (min and median over repeats).

Per-step timing goes through fit's own logger hook: with ``trainer.log_every=1`` fit calls ``log.log`` once
per optimizer step, after the step, so the gap between two calls is exactly one full loop iteration (batch
fetch and collation, forward, extra losses, backward, clipping, optimizer steps, method hook, schedulers,
zero_grad, loss reduction, progress bar). Setup, ``on_train_start`` and the evaluation fit runs at its last
step fall outside every gap that is kept.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from peftbench.checkpoint import LoopState  # noqa: E402
from peftbench.config import RunConfig, validate  # noqa: E402
from peftbench.train import Parts, build_schedulers, fit, make_accelerator, setup  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "conf"
NEVER = 10**9  # trainer.eval_every: no evaluation inside the timed window


def add_common_args(parser: argparse.ArgumentParser, steps: int, repeats: int) -> None:
    parser.add_argument("--model", default="minilm", help="conf/model option (default: the real MiniLM)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64, help="Rotten Tomatoes task.max_length")
    parser.add_argument("--steps", type=int, default=steps, help="timed optimizer steps per repeat")
    parser.add_argument("--warmup", type=int, default=1, help="untimed optimizer steps before them (>= 1)")
    parser.add_argument("--repeats", type=int, default=repeats, help="interleaved repeats per variant")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads (1: steadiest when other processes share the cores)")
    parser.add_argument("--shuffled", action="store_true",
                        help="trainer.group_by_length=false: uniformly shuffled batches (longer, as before grouping "
                             "became the default); default: the run's default, length-grouped batches")
    parser.add_argument("--train-samples", type=int, default=None,
                        help="task.max_train_samples (fewer examples to tokenise at setup; needs >= "
                             "(warmup + steps + 2) * batch size)")


def configure_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    print(f"torch threads: {torch.get_num_threads()} (torch.set_num_threads), cpu cores: {os.cpu_count()}, "
          f"torch {torch.__version__}")


def run_config(args: argparse.Namespace, total_steps: int, *method: str) -> RunConfig:
    """The validated harness config for ``total_steps`` optimizer steps, on CPU, without logger or evaluation
    in the timed window (evaluation sets cut to 32 examples: fit evaluates at its last, untimed, step)."""
    overrides = [
        f"model={args.model}", "task=rotten_tomatoes", f"task.max_length={args.max_length}",
        "task.max_eval_samples=32", "logger=none", "trainer.cpu=true", f"trainer.batch_size={args.batch_size}",
        "trainer.eval_batch_size=32", f"trainer.max_steps={total_steps}", f"trainer.eval_every={NEVER}",
        "trainer.log_every=1", "experiment_name=benchmark",
        "paths.cache_dir=null",  # no tokenized-data cache: nothing written into the checkout, every run tokenizes
        *method,
    ]
    if getattr(args, "shuffled", False):
        overrides.append("trainer.group_by_length=false")
    if args.train_samples is not None:
        overrides.append(f"task.max_train_samples={args.train_samples}")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return validate(compose("config", overrides=overrides))


class StepClock:
    """The logger ``fit`` calls after every optimizer step (``log_every=1``): a time stamp per step.

    Only the first call of a step counts: at an evaluation step ``fit`` logs a second time, after evaluating, and
    keeping that later stamp charged the evaluation to the step (the harness's last timed step was once 0.5 s
    slower for it, which showed as a 1.10-1.13x harness/bare gap per step)."""

    def __init__(self) -> None:
        self.stamps: dict[int, float] = {}

    def log(self, values: dict[str, Any], step: int) -> None:
        self.stamps.setdefault(step, time.perf_counter())

    def finish(self) -> None:
        pass


@dataclass
class Harness:
    """Parts from ``peftbench.train.setup``; each :meth:`time_steps` call is one real ``fit`` from step 0.

    Optimizers and schedulers carry on across calls (the model keeps training); each call starts a fresh
    ``LoopState``, so every repeat sees the same first batches of epoch 0."""

    run: RunConfig
    accelerator: Any = None
    parts: Parts | None = None
    schedulers: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.accelerator = make_accelerator(self.run)
        self.parts = setup(self.run, self.accelerator)
        self.schedulers = build_schedulers(self.run, self.parts.optimizers, self.run.trainer.max_steps)

    def time_steps(self, warmup: int, steps: int, tail: int = 0) -> list[float]:
        """ms of each optimizer step ``warmup + 1 .. warmup + steps`` of one ``fit`` call that runs ``tail``
        more steps after them (AdaLoRA: keeps the final-phase steps out of the window)."""
        clock = StepClock()
        fit(self.run, self.accelerator, self.parts, self.schedulers, warmup + steps + tail, clock, LoopState())
        return [1000 * (clock.stamps[k] - clock.stamps[k - 1]) for k in range(warmup + 1, warmup + steps + 1)]

    def batches(self, count: int) -> list[dict[str, torch.Tensor]]:
        """The first ``count`` batches of epoch 0 exactly as ``fit`` receives them (collated, on device)."""
        loader = self.parts.train_loader
        loader.set_epoch(0)
        out = []
        for batch in loader:
            out.append(batch)
            if len(out) == count:
                return out
        raise ValueError(f"the training set gives only {len(out)} batches, {count} needed; raise --train-samples")

    def loading_ms(self, count: int) -> float:
        """ms per batch to fetch and collate ``count`` batches from the harness loader (part of its step)."""
        start = time.perf_counter()
        self.batches(count)
        return 1000 * (time.perf_counter() - start) / count


def check_args(args: argparse.Namespace) -> None:
    if args.warmup < 1 or args.steps < 1 or args.repeats < 1:
        raise SystemExit("--warmup, --steps and --repeats must be >= 1")


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def per_repeat(steps: list[list[float]]) -> list[float]:
    """Mean ms per step of each repeat (``steps[repeat][k]``: ms of the k-th timed step)."""
    return [mean(repeat) for repeat in steps]


def floor(steps: list[list[float]]) -> float:
    """Mean over step positions of the fastest repeat at that position: every repeat replays the same
    batches, so this is the step time with the least interference from other processes."""
    return mean([min(column) for column in zip(*steps, strict=True)])


def summary(label: str, steps: list[list[float]]) -> str:
    values = per_repeat(steps)
    return (f"{label:<16} ms/step  min {min(values):8.1f}  median {statistics.median(values):8.1f}  "
            f"floor {floor(steps):8.1f}")


def ratio_line(label: str, numerator: list[list[float]], denominator: list[list[float]]) -> str:
    """Ratios of the per-repeat minima and medians, the median of the per-repeat ratios (pairs measured side
    by side, which cancels slow drifts in machine load) and the ratio of the floors."""
    top, bottom = per_repeat(numerator), per_repeat(denominator)
    paired = statistics.median(n / d for n, d in zip(top, bottom, strict=True))
    medians = statistics.median(top) / statistics.median(bottom)
    return (f"ratio {label}: min {min(top) / min(bottom):.3f}  median {medians:.3f}  paired-median {paired:.3f}  "
            f"floor {floor(numerator) / floor(denominator):.3f}")


def interleaved(repeat: int, names: list[str]) -> list[str]:
    """ABC, CBA, ABC, ...: every variant runs early and late equally often."""
    return names if repeat % 2 == 0 else names[::-1]


# Operators that copy a device value to the host: on a GPU each one waits for every kernel queued before it.
SYNC_OPS = ("aten::_local_scalar_dense", "aten::nonzero", "aten::is_nonzero")


def op_counts(work: Any, steps: int) -> tuple[float, float, dict[str, float]]:
    """Operators per step of ``work()`` (which runs ``steps`` optimizer steps) under ``torch.profiler``: all aten
    operators (each a kernel launch on a GPU), the host-syncing ones among them, and those by name. On a CPU
    the syncs cost nothing; on a GPU each is a bubble, which is why they are counted here."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        work()
    counts: dict[str, int] = {}
    for event in profiler.events():
        if event.name.startswith("aten::"):
            counts[event.name] = counts.get(event.name, 0) + 1
    syncs = {name: counts.get(name, 0) / steps for name in SYNC_OPS}
    return sum(counts.values()) / steps, sum(syncs.values()), syncs


def op_count_line(label: str, work: Any, steps: int) -> str:
    total, syncs, by_name = op_counts(work, steps)
    detail = "  ".join(f"{name.removeprefix('aten::')} {count:.1f}" for name, count in by_name.items())
    return f"ops {label:<16} aten ops/step {total:8.1f}  host syncs/step {syncs:5.1f}  ({detail})"
