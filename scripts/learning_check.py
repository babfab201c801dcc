"""Does every registered method learn on real data? Runs each method on the MiniLM quick preset (real pretrained
MiniLM, real Rotten Tomatoes sentences, offline) and prints one table row per method: best and final validation
accuracy, test accuracy, trainable and effective parameters, seconds, and whether the validation accuracy is
above chance by a one-sided binomial test against the majority-class rate.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/learning_check.py           # the quick preset (~2-3 min a method)
    HF_HUB_OFFLINE=1 .venv/bin/python scripts/learning_check.py --short   # the CI version (tests/test_learning.py)
    HF_HUB_OFFLINE=1 .venv/bin/python scripts/learning_check.py --methods lora,adalora -- trainer.lr=5e-4

A method enters by registering: the list comes from ``peftbench.methods.available()``. Extra Hydra overrides
after ``--`` apply to every method.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from scipy.stats import binomtest

ROOT = Path(__file__).resolve().parents[1]
PRESET = "+experiment=sora_glue_quick"  # MiniLM, Rotten Tomatoes, 2,000 sentences x 2 epochs (126 steps)
# The CI version: 512 sentences x 2 epochs at batch 16 (64 steps), 200 validation/test sentences, length 48.
SHORT = ["task.max_train_samples=512", "task.max_eval_samples=200", "task.max_length=48", "trainer.batch_size=16",
         "trainer.epochs=2", "trainer.eval_every=64"]
# Method settings scaled to the short run, as the quick preset scales them to 126 steps.
# MAM at lr 1e-3 collapses to the majority class on some seeds of this 64-step, batch-16 run whatever the batch
# order (seeds 0/1/2 final val: shuffled 0.755/0.525/0.705, length-grouped 0.525/0.735/0.545); at lr 3e-4 it learned
# on all five runs tried (shuffled 0.660/0.680, grouped 0.715/0.655/0.670). The 126-step quick preset keeps 1e-3.
# P-tuning's encoder at its default prompt lr 3e-2 sits on an edge in this run (seed 0: 0.625 with one BLAS thread,
# 0.520 with two; seeds 1/3: 0.595/0.640); at 1e-2 it learned on every seed and thread count tried (seeds 0/1/3:
# 0.695/0.630/0.630). On the 126-step quick preset 3e-2 does better (0.703, against 0.589 at 1e-2), so only the
# short run changes it.
SHORT_METHOD = {"adalora": ["method.t_i=10", "method.t_f=20", "method.delta_t=2"], "mam": ["trainer.lr=3e-4"],
                "ptuning": ["method.prompt_lr=1e-2"]}


def compose(overrides: list[str]) -> Any:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


def check_method(method: str, results: Path, extra: list[str], short: bool) -> dict[str, Any]:
    from peftbench import methods
    from peftbench.train import train

    precision = methods.get(method).method.quantization  # QLoRA declares the backbone precision it trains on
    overrides = [PRESET, f"method={method}", "logger=none", f"paths.results_dir={results}", "experiment_name=learn",
                 *([f"model.quantization={precision}"] if precision else []),
                 *(SHORT + SHORT_METHOD.get(method, []) if short else []), *extra]
    started = time.time()
    record = train(compose(overrides))
    metrics, parameters = record["metrics"], record["parameters"]
    validation = record["data"]["used"]["validation"]
    majority = majority_rate(overrides, validation)
    correct = round(metrics["final"]["accuracy"] * validation)
    above = binomtest(correct, validation, majority, alternative="greater").pvalue
    return {"method": method, "best": metrics["best"]["accuracy"], "final": metrics["final"]["accuracy"],
            "test": metrics["final"].get("test_accuracy"), "trainable": parameters["adapter"],
            "effective": parameters["effective"], "seconds": round(time.time() - started, 1), "p_above": above,
            "n": validation}


def majority_rate(overrides: list[str], size: int) -> float:
    """Accuracy of always predicting the most frequent class on the validation examples the run scored."""
    from collections import Counter

    from peftbench import tasks
    from peftbench.config import validate

    run = validate(compose(overrides))
    splits = tasks.family_for(run.task).load(run.data_dir)
    labels = Counter(example.label for example in splits.eval["validation"][:size])
    return max(labels.values()) / sum(labels.values())


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'method':<11}{'best val':>9}{'final val':>10}{'test':>7}{'trainable':>12}{'effective':>12}"
             f"{'seconds':>9}  above chance (binomial p, n)"]
    for row in rows:
        test = "-" if row["test"] is None else f"{row['test']:.3f}"
        verdict = "yes" if row["p_above"] < 0.01 else "NO"
        lines.append(f"{row['method']:<11}{row['best']:>9.3f}{row['final']:>10.3f}{test:>7}{row['trainable']:>12,}"
                     f"{row['effective']:>12,}{row['seconds']:>9.1f}  {verdict} (p={row['p_above']:.1e}, "
                     f"n={row['n']})")
    return "\n".join(lines)


def run(methods_to_check: list[str], extra: list[str], short: bool) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for method in methods_to_check:
            rows.append(check_method(method, Path(folder), extra, short))
            print(table(rows[-1:]).splitlines()[-1], flush=True)  # as each finishes
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, extra = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", help="comma-separated; default: every registered method")
    parser.add_argument("--short", action="store_true", help="the shortened CI version")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args(ours)
    from peftbench import methods

    chosen = args.methods.split(",") if args.methods else methods.available()
    rows = run(chosen, extra, args.short)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if all(row["p_above"] < 0.01 for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
