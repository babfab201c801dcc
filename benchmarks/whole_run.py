"""Whole-run benchmark: the quickstart's work (``python -m peftbench``) done by peftbench, by HF Trainer + peft
and by a bare torch + peft loop, each as a separate whole process, alternating, ``--repeats`` times.

    python benchmarks/whole_run.py --repeats 5        # MiniLM LoRA r=8, 2,000 sentences x 2 epochs = 126 steps
    python benchmarks/whole_run.py --quick            # smoke: 64 sentences, 1 epoch (2 steps), 32 eval sentences

Every contender composes the same config (``conf/`` plus the same overrides) and takes split, tokenisation, model,
LoRA and hyperparameters from it (``benchmarks/quickstart.py``). peftbench runs its defaults: length-grouped training
batches and length-sorted evaluation (its best policy for time to result); Trainer and the bare loop pad each
shuffled batch (``DataCollatorWithPadding``). ``--shuffled`` adds peftbench with ``trainer.group_by_length=false``
(training batches padded as the others pad them: the comparison of overhead; its evaluation stays length-sorted),
``--trainer-grouped`` adds Trainer with its length-grouped sampler (Trainer's best policy for time to result),
``--unmerged`` adds peftbench with ``trainer.merge_for_evaluation=false`` (evaluation through the adapters).
Wall time is the whole process (imports, data, model load, training, evaluations, test, and for peftbench
its records and report) as seen by a small wrapper process; peak memory is the contender's maximum
resident set size (``getrusage(RUSAGE_CHILDREN)`` in that wrapper, so one contender per reading) and, on CUDA,
``torch.cuda.max_memory_allocated``. Orders alternate: A B C, C B A, A B C, ...
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
QUICK = ["task.max_train_samples=64", "task.max_eval_samples=32", "trainer.epochs=1", "trainer.eval_batch_size=32"]
RESULT = "RESULT "


def measure(command: list[str]) -> None:
    """``--measure``: run ``command``, then print its wall seconds, peak RSS and exit code as one JSON line."""
    start = time.perf_counter()
    done = subprocess.run(command)
    wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(RESULT + json.dumps({"wall_s": wall, "peak_rss_mib": peak_kib / 1024, "rc": done.returncode}))


def commands(overrides: list[str], grouped: bool, shuffled: bool = False,
             unmerged: bool = False) -> dict[str, list[str]]:
    python = sys.executable
    chosen = {
        "peftbench": [python, "-m", "peftbench", *overrides],
        **({"peftbench+shuffled": [python, "-m", "peftbench", *overrides, "trainer.group_by_length=false"]}
           if shuffled else {}),
        **({"peftbench+unmerged": [python, "-m", "peftbench", *overrides, "trainer.merge_for_evaluation=false"]}
           if unmerged else {}),
        "trainer": [python, str(HERE / "whole_trainer.py"), *overrides],
        "bare": [python, str(HERE / "whole_bare.py"), *overrides],
    }
    if grouped:
        chosen["trainer+grouped"] = [*chosen["trainer"], "--group-by-length"]
    return chosen


def last_result(text: str) -> dict:
    lines = [line for line in text.splitlines() if line.startswith(RESULT)]
    return json.loads(lines[-1][len(RESULT):]) if lines else {}


def peftbench_result(root: Path) -> dict:
    """Accuracy and device memory from the run record peftbench wrote under ``root``."""
    found = glob.glob(str(root / "results" / "**" / "run.json"), recursive=True)
    if not found:
        return {}
    record = json.loads(Path(found[0]).read_text())
    final = record.get("metrics", {}).get("final", {})
    return {"val_accuracy": final.get("accuracy"), "test_accuracy": final.get("test_accuracy"),
            "steps": record.get("total_steps"), "cuda_peak_mib": (record.get("peak_memory_mb") or {}).get("cuda")}


def run_once(name: str, command: list[str], scratch: Path, env: dict[str, str]) -> dict:
    root = scratch / name
    wrapped = [sys.executable, str(Path(__file__).resolve()), "--measure", "--", *command, f"paths.root_dir={root}"]
    done = subprocess.run(wrapped, cwd=ROOT, env=env, capture_output=True, text=True)
    outcome = last_result(done.stdout)
    if outcome.get("rc", 1) != 0 or done.returncode != 0:
        raise SystemExit(f"{name} failed (exit {outcome.get('rc', done.returncode)}):\n{done.stderr[-4000:]}")
    result = peftbench_result(root) if name.startswith("peftbench") else last_result(done.stdout.rsplit(RESULT, 1)[0])
    return {**result, **outcome}


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(runs: dict[str, list[dict]]) -> None:
    names = list(runs)
    others = [name for name in ("trainer", "trainer+grouped", "bare") if name in runs]
    walls = {n: [r["wall_s"] for r in runs[n]] for n in names}
    print("\n| contender | wall s min / median | peak RSS MiB | CUDA peak MiB | val acc | test acc | "
          f"{' | '.join(f'÷ {other} (median, paired)' for other in others)} |")
    print("|---|---|---|---|---|---|" + "---|" * len(others))
    for name in names:
        cells = [name, f"{min(walls[name]):.1f} / {statistics.median(walls[name]):.1f}",
                 f"{max(r['peak_rss_mib'] for r in runs[name]):.0f}",
                 fmt(max((r.get("cuda_peak_mib") or 0) for r in runs[name]) or None, ".0f"),
                 " ".join(fmt(r.get("val_accuracy"), ".4f") for r in runs[name]),
                 " ".join(fmt(r.get("test_accuracy"), ".4f") for r in runs[name])]
        for other in others:
            paired = statistics.median(a / b for a, b in zip(walls[name], walls[other], strict=True))
            cells.append(f"{statistics.median(walls[name]) / statistics.median(walls[other]):.3f}, {paired:.3f}")
        print("| " + " | ".join(cells) + " |")
    for name in names:
        print("  ".join(f"ratio {name}/{other}: median "
                        f"{statistics.median(walls[name]) / statistics.median(walls[other]):.3f}" for other in others))


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--measure":
        measure(sys.argv[3:] if sys.argv[2] == "--" else sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="whole runs per contender (alternating order)")
    parser.add_argument("--quick", action="store_true", help="smoke size: " + " ".join(QUICK))
    parser.add_argument("--trainer-grouped", action="store_true", help="add Trainer with group_by_length")
    parser.add_argument("--shuffled", action="store_true",
                        help="add peftbench with trainer.group_by_length=false (the padding policy of the others)")
    parser.add_argument("--unmerged", action="store_true",
                        help="add peftbench with trainer.merge_for_evaluation=false (evaluation through the adapters)")
    parser.add_argument("--only", default=None,
                        help="comma-separated contenders to run (e.g. peftbench,trainer+grouped); default: all chosen")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for every contender")
    parser.add_argument("overrides", nargs="*", help="more peftbench overrides, given to every contender")
    args = parser.parse_args()
    overrides = ["experiment_name=whole_run", "force=true", *(QUICK if args.quick else []), *args.overrides]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if args.threads is not None:
        env["OMP_NUM_THREADS"] = str(args.threads)
    chosen = commands(overrides, args.trainer_grouped, args.shuffled, args.unmerged)
    if args.only:
        wanted = args.only.split(",")
        unknown = sorted(set(wanted) - set(chosen))
        if unknown:
            raise SystemExit(f"--only: unknown contender(s) {unknown}; choose from {sorted(chosen)}")
        chosen = {name: command for name, command in chosen.items() if name in wanted}
    print(f"contenders: {', '.join(chosen)}; overrides: {' '.join(overrides)}; {args.repeats} repeats; "
          f"{os.cpu_count()} cpu cores; OMP_NUM_THREADS={env.get('OMP_NUM_THREADS', 'unset')}", flush=True)
    runs: dict[str, list[dict]] = {name: [] for name in chosen}
    with tempfile.TemporaryDirectory(prefix="whole_run_") as scratch:
        for repeat in range(args.repeats):
            order = list(chosen) if repeat % 2 == 0 else list(chosen)[::-1]
            for name in order:
                result = run_once(name, chosen[name], Path(scratch) / f"{name}-{repeat}", env)
                runs[name].append(result)
                print(f"repeat {repeat + 1} {name:<16} wall {result['wall_s']:7.1f} s  peak RSS "
                      f"{result['peak_rss_mib']:6.0f} MiB  steps {result.get('steps')}  val acc "
                      f"{fmt(result.get('val_accuracy'), '.4f')}  test acc {fmt(result.get('test_accuracy'), '.4f')}",
                      flush=True)
    table(runs)


if __name__ == "__main__":
    main()
