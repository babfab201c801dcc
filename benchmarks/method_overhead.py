"""Per optimizer-step time of LoRA, AdaLoRA and SoRA through the harness, as ratios to LoRA, in one run.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/method_overhead.py            # MiniLM, batch 32, rank 12
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/method_overhead.py --profile  # + where each method's time goes
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/method_overhead.py --all      # + every other registered method

``--all`` adds every other registered method with its own defaults at the default budget (r8 in the papers'
budget groups: Houlsby d=32, Pfeiffer d=64, 20 virtual tokens for the prompt methods; QLoRA on the NF4 backbone),
timed in the same interleaved repeats, so each line is a ratio to LoRA measured in one run.

Equal initial rank on the same model and batches: LoRA r=12, AdaLoRA init_rank=12 -> target_rank=8, SoRA r=12
(defaults of conf/method otherwise: AdaLoRA's orthogonal regulariser γ=0.1, SoRA's L1 term and proximal gate
optimizer). AdaLoRA runs twice: ΔT=1 (a mask update after every timed step, the worst case) and ΔT=100 (the
paper's large-task value; no mask step falls in the window, so it measures the per-step importance update, and
the amortised line adds 1/100 of the mask cost measured by ΔT=1). Its schedule, t_i=1 and t_f=1 over each fit
call of warmup + steps + 2 steps, puts every timed step inside the budget phase (importance update every step).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics

from common import (
    Harness,
    add_common_args,
    check_args,
    configure_threads,
    interleaved,
    mean,
    op_count_line,
    per_repeat,
    ratio_line,
    run_config,
    summary,
)

from peftbench.config import ConfigError

TAIL = 2  # untimed steps after the window: AdaLoRA's final phase (t_f=1) and the step fit evaluates at
ADALORA = ["method=adalora", "method.t_i=1", "method.t_f=1"]


def variants(rank: int, target: int, every_method: bool = False) -> dict[str, list[str]]:
    adalora = [*ADALORA, f"method.init_rank={rank}", f"method.target_rank={target}"]
    chosen = {
        "lora": ["method=lora", f"method.r={rank}"],
        "adalora dT=1": [*adalora, "method.delta_t=1"],
        "adalora dT=100": [*adalora, "method.delta_t=100"],
        "sora": ["method=sora", f"method.r={rank}"],
    }
    if every_method:
        from peftbench import methods

        for name in methods.available():
            if name in ("lora", "adalora", "sora"):
                continue
            precision = methods.get(name).method.quantization  # QLoRA declares the backbone it trains on
            chosen[name] = [f"method={name}", *([f"model.quantization={precision}"] if precision else [])]
    return chosen


def profile(harness: Harness, warmup: int, steps: int, lines: int) -> None:
    """cProfile of one fit call: loop, optimizer and adapter functions by cumulative ms per fit step (the
    top ``lines``, then up to ``lines`` more from peftbench/methods). The fit call includes its untimed steps
    and last-step evaluation; cProfile slows every Python call, so compare rows, not absolute times."""
    profiler = cProfile.Profile()
    profiler.enable()
    harness.time_steps(warmup, steps, TAIL)
    profiler.disable()
    total = warmup + steps + TAIL
    stats = pstats.Stats(profiler).stats
    rows = []
    for (path, line, name), (_, calls, _, cumulative, _) in stats.items():
        if "peftbench/" in path or "/optim/" in path or "peft/tuners" in path or "accelerate/" in path:
            where = f"{path.split('site-packages/')[-1]}:{line}({name})"
            rows.append((1000 * cumulative / total, calls / total, where))
    rows.sort(reverse=True)
    shown = rows[:lines] + [row for row in rows[lines:] if "peftbench/methods/" in row[2]][:lines]
    for ms, calls, where in shown:
        print(f"  {ms:8.1f} ms/step  {calls:7.1f} calls/step  {where}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, steps=4, repeats=6)
    parser.add_argument("--rank", type=int, default=12, help="initial rank of every method")
    parser.add_argument("--target-rank", type=int, default=8, help="AdaLoRA's target rank")
    parser.add_argument("--profile", action="store_true", help="after timing, cProfile one fit per method")
    parser.add_argument("--ops", action="store_true",
                        help="after timing, count aten operators and host syncs per fit step of each method")
    parser.add_argument("--all", action="store_true", help="also time every other registered method")
    parser.add_argument("--only", nargs="*", default=None, help="variants to run (lora is always included)")
    args = parser.parse_args()
    check_args(args)
    configure_threads(args.threads)
    length = args.warmup + args.steps + TAIL
    chosen = {name: method for name, method in variants(args.rank, args.target_rank, args.all).items()
              if args.only is None or name == "lora" or name in args.only}
    total = (args.repeats + 1) * length  # the discarded first repeat included
    harnesses = {}
    for name, method in chosen.items():
        try:
            harnesses[name] = Harness(run_config(args, total, *method))
        except ConfigError as error:  # e.g. QLoRA on a random-init model: nothing to quantise
            print(f"  {name:<16} not timed: {error}")
    print(f"model {args.model}, batch {args.batch_size}, max_length {args.max_length}, initial rank {args.rank}, "
          f"{args.steps} timed steps after {args.warmup} warm-up (+{TAIL} untimed), {args.repeats} repeats")
    for name, harness in harnesses.items():
        counts = harness.parts.parameters
        print(f"  {name:<16} trainable {counts['trainable']:,} ({harness.run.method})")
    for harness in harnesses.values():  # discarded: first touch of activations and optimizer state
        harness.time_steps(args.warmup, args.steps, TAIL)
    times: dict[str, list[list[float]]] = {name: [] for name in harnesses}
    for repeat in range(args.repeats):
        for name in interleaved(repeat, list(harnesses)):
            times[name].append(harnesses[name].time_steps(args.warmup, args.steps, TAIL))
        print(f"repeat {repeat + 1}: " + "  ".join(f"{n} {mean(t[-1]):.1f}" for n, t in times.items()) + " ms/step",
              flush=True)
    for name in harnesses:
        print(summary(name, times[name]))
    if "adalora dT=1" in times and "adalora dT=100" in times:
        dt1, dt100, lora = (per_repeat(times[n]) for n in ("adalora dT=1", "adalora dT=100", "lora"))
        amortised = [b + (a - b) / 100 for a, b in zip(dt1, dt100, strict=True)]
        ratios = [a / lo for a, lo in zip(amortised, lora, strict=True)]
        print(f"adalora dT=100 amortised (+1/100 of the dT=1 mask cost): ratio to lora per repeat, "
              f"min {min(ratios):.3f}  median {statistics.median(ratios):.3f}")
    for name in harnesses:
        if name != "lora":
            print(ratio_line(f"{name}/lora", times[name], times["lora"]))
    if args.ops:  # whole fit calls: untimed steps and the last-step evaluation (32 examples) included
        for name, harness in harnesses.items():
            print(op_count_line(name, lambda h=harness: h.time_steps(args.warmup, args.steps, TAIL), length))
    if args.profile:
        for name, harness in harnesses.items():
            print(f"profile {name} (cumulative ms per optimizer step under cProfile):")
            profile(harness, args.warmup, args.steps, lines=12)


if __name__ == "__main__":
    main()
