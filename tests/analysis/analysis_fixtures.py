"""Build schema-1 run records for the analysis tests: deterministic, small, and covering the awkward cases
(a missing cell, a single-seed cell, failed and running runs, a LoRA record without method_records)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np

MATRIX_TYPES = ("query", "key", "value", "attention_output", "ffn_in", "ffn_out")
GLUE_MODEL = "deberta_v3_base"
GLUE_TASKS = ("mnli", "cola", "stsb", "qqp")
SEEDS = (0, 1, 2)
LAYERS = 4
TOTAL_STEPS = 1000
TASK_METRICS = {
    "mnli": ("accuracy", "mismatched_accuracy"),
    "cola": ("matthews_correlation",),
    "stsb": ("pearson", "spearman", "correlation"),
    "qqp": ("accuracy", "f1"),
    "rte": ("accuracy",),
    "mrpc": ("accuracy", "f1"),
    "rotten_tomatoes": ("accuracy",),
}
MAIN_METRIC = {"cola": "matthews_correlation", "stsb": "correlation"}
RANK = {"r2": 2, "r8": 8, "none": None}
BATCH_SIZE = 32
# Wall time per method relative to LoRA, roughly AdaLoRA Table 15 (AdaLoRA +11%); full FT slower still.
TIME_FACTOR = {"lora": 1.0, "adalora": 1.1, "sora": 1.05, "full": 1.5}
DEVICE = "cuda:NVIDIA H100 80GB HBM3"


def cost_block(method: str, seed: int) -> dict[str, Any]:
    """record["cost"] as the trainer writes it: every run sees the same examples; tokens differ by seed."""
    examples = TOTAL_STEPS * BATCH_SIZE
    return {"device": DEVICE, "optimizer_steps": TOTAL_STEPS, "examples_seen": examples,
            "tokens_seen": examples * 100 + 7 * seed}


def rng_for(*key: Any) -> np.random.Generator:
    # crc32, not hash(): Python randomises str hashes per process.
    return np.random.default_rng(zlib.crc32("/".join(map(str, key)).encode()))


def metric_block(task: str, *key: Any) -> dict[str, float]:
    rng = rng_for(task, *key)
    values = {name: round(float(rng.uniform(0.55, 0.95)), 6) for name in TASK_METRICS[task]}
    if task == "stsb":
        values["correlation"] = (values["pearson"] + values["spearman"]) / 2
    return values


def module_name(layer: int, matrix_type: str) -> str:
    suffix = {"query": "attention.self.query_proj", "key": "attention.self.key_proj",
              "value": "attention.self.value_proj", "attention_output": "attention.output.dense",
              "ffn_in": "intermediate.dense", "ffn_out": "output.dense"}[matrix_type]
    return f"deberta.encoder.layer.{layer}.{suffix}"


def matrices(layers: int = LAYERS) -> dict[str, dict[str, Any]]:
    return {module_name(layer, t): {"layer": layer, "type": t, "in_features": 768,
                                    "out_features": 3072 if t == "ffn_in" else 768}
            for layer in range(layers) for t in MATRIX_TYPES}


def cubic_budget(step: int, b0: int, bT: int, t_i: int, t_f: int, total: int) -> int:
    if step < t_i:
        return b0
    if step >= total - t_f:
        return bT
    return int(bT + (b0 - bT) * (1 - (step - t_i) / (total - t_i - t_f)) ** 3)


def adalora_records(rank: int, *key: Any) -> dict[str, Any]:
    """Ranks shrink from the initial 1.5 r to a random final pattern that sums to the target budget-ish."""
    rng = rng_for("ranks", *key)
    names = list(matrices())
    initial = int(1.5 * rank)
    final = {name: int(rng.integers(0, initial + 1)) for name in names}
    schedule = {"b0": initial * len(names), "bT": rank * len(names), "t_i": 100, "t_f": 200, "delta_t": 100,
                "total_steps": TOTAL_STEPS}
    history = []
    for step in range(100, TOTAL_STEPS + 1, 100):
        fraction = min(1.0, step / (TOTAL_STEPS - schedule["t_f"]))
        ranks = {n: int(round(initial - (initial - final[n]) * fraction)) for n in names}
        budget = cubic_budget(step, schedule["b0"], schedule["bT"], schedule["t_i"], schedule["t_f"], TOTAL_STEPS)
        history.append({"step": step, "budget": budget, "ranks": ranks})
    return {"rank_history": history, "matrices": matrices(), "final_ranks": final, "budget_schedule": schedule}


def sora_stages(*key: Any) -> list[dict[str, Any]]:
    rng = rng_for("stages", *key)
    stages = []
    for stage in range(8):
        threshold = stage * 1e-4
        memorization = 100.0 if stage == 0 else round(100 - 4 * stage - float(rng.uniform(0, 2)), 4)
        generalization = 100.0 if stage == 0 else round(100 + float(rng.uniform(-3, 1)), 4)
        stages.append({"stage": stage, "threshold": threshold, "nonzero_parameters": int(1_000_000 / 2 ** stage),
                       "memorization": memorization, "generalization": generalization,
                       "train_metric": 0.9 * memorization / 100, "eval_metric": 0.8 * generalization / 100})
    return stages


def make_record(*, experiment: str, method: str, task: str, budget: str, seed: int, model: str = GLUE_MODEL,
                status: str = "completed", method_records: dict | None = None,
                with_cost: bool = False) -> dict[str, Any]:
    """``with_cost``: a run of the current trainer (``cost``, CUDA memory); without it, an older CPU record
    that the cost table must complete from total_steps × batch size."""
    run_id = f"{method}-{budget}-{task}-s{seed}"
    rank = RANK.get(budget)
    adapter = 0 if method == "full" else 12 * (rank or 8) * 13_824
    head = 768 * 769 + 769 * (1 if task == "stsb" else 3 if task == "mnli" else 2)
    completed = status == "completed"
    metrics = None
    if completed and task in TASK_METRICS:  # task_record fills in the others
        metrics = {"main_metric": MAIN_METRIC.get(task, "accuracy"),
                   "final": metric_block(task, experiment, method, budget, seed, "final"),
                   "best": metric_block(task, experiment, method, budget, seed, "best"), "best_step": 900}
    return {
        "schema_version": 1, "run_id": run_id, "experiment": experiment, "status": status,
        "failure": None if status != "failed" else {"type": "RuntimeError", "message": "CUDA out of memory"},
        "method": method, "model": model, "task": task, "budget": budget, "seed": seed,
        "config": {"method": {"name": method, **({"r": rank} if rank else {})}, "budget": {"rank": rank},
                   "trainer": {"batch_size": BATCH_SIZE, "gradient_accumulation_steps": 1}},
        "started_at": "2026-11-25T10:00:00+00:00", "finished_at": "2026-11-25T10:10:00+00:00",
        "wall_time_s": 600.0 * TIME_FACTOR.get(method, 1.0) + 10 * seed,
        "total_steps": TOTAL_STEPS if completed else None,
        "peak_memory_mb": {"cpu_rss": 1000.0 + seed,
                           "cuda": 4000.0 * TIME_FACTOR.get(method, 1.0) if with_cost else None},
        "parameters": {"trainable": adapter + head, "adapter": adapter, "head": head, "total": 184_000_000,
                       "effective": (adapter * 0.95 if method == "adalora" else adapter) + head},
        "metrics": metrics,
        "history": [{"step": 500, "epoch": 1.0, "train_loss": 0.5, "eval": {}, "method": {}}],
        "method_records": method_records or {},
        "versions": {"python": "3.11"}, "git": {"commit": "0" * 40, "dirty": False}, "world_size": 1,
        **({"cost": cost_block(method, seed)} if with_cost and completed else {}),
    }


def glue_records() -> list[dict[str, Any]]:
    """lora/adalora × r2/r8 plus full FT on four tasks and three seeds, with holes: no lora r2 on STS-B,
    a single adalora r2 seed on QQP, and a failed and a running run that tables must ignore. These runs carry
    ``cost`` and CUDA memory; the SoRA and quickstart records do not (cost falls back to steps × batch)."""
    records = []
    for method, budget in (("full", "none"), ("lora", "r8"), ("adalora", "r8"), ("lora", "r2"), ("adalora", "r2")):
        for task in GLUE_TASKS:
            if (method, budget, task) == ("lora", "r2", "stsb"):
                continue
            seeds = (0,) if (method, budget, task) == ("adalora", "r2", "qqp") else SEEDS
            for seed in seeds:
                extra = adalora_records(RANK[budget], task, budget, seed) if method == "adalora" else None
                records.append(make_record(experiment="glue_budget", method=method, task=task, budget=budget,
                                           seed=seed, method_records=extra, with_cost=True))
    records.append(make_record(experiment="glue_budget", method="lora", task="cola", budget="r8", seed=7,
                               status="failed"))
    records.append(make_record(experiment="glue_budget", method="lora", task="mnli", budget="r8", seed=8,
                               status="running"))
    return records


def sora_records() -> list[dict[str, Any]]:
    records = []
    for task in ("rte", "mrpc"):
        for seed in (0, 1):
            extra = {"stages": sora_stages(task, seed), "matrices": matrices(),
                     "final_ranks": adalora_records(8, "sora", task, seed)["final_ranks"],
                     "rank_history": adalora_records(8, "sora", task, seed)["rank_history"]}
            for entry in extra["rank_history"]:
                entry.pop("budget")  # SoRA has no budget schedule
            record = make_record(experiment="sora_sparsity", method="sora", task=task, budget="r8", seed=seed,
                                 model="roberta_large", method_records=extra)
            if seed == 1:
                # As peftbench.recipes.sora_sparsity writes it: stages under "sparsity", and a ratio left
                # undefined (null) when the dense-stage metric was 0.
                record["sparsity"] = {"stages": extra.pop("stages")}
                record["sparsity"]["stages"][3]["memorization"] = None
            records.append(record)
    return records


def quickstart_record() -> dict[str, Any]:
    """A plain LoRA run as the quickstart writes it: no method_records."""
    record = make_record(experiment="quickstart", method="lora", task="rotten_tomatoes", budget="none", seed=42,
                         model="minilm")
    record["config"]["method"]["r"] = 8  # the method's own default when the budget is "none"
    return record


def all_records() -> list[dict[str, Any]]:
    return glue_records() + sora_records() + [quickstart_record()]


def write_results(root: Path, records: list[dict[str, Any]]) -> Path:
    for record in records:
        path = root / record["experiment"] / record["run_id"] / "run.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1))
    return root


# AdaLoRA Tables 2 and 3. Metric values are simple formulas of a base per (method, budget) and the seed, so the
# tests can check the comparison tables against numbers worked out by hand. SQuAD metrics are recorded in
# percent (as peftbench/tasks/extractive_qa/metrics.py writes them), ROUGE as fractions.
QA_MODEL = "deberta_v3_base"
SUMMARY_MODEL = "bart_large"
QA_BASE = {("full", "none"): 85.0, ("lora", "r8"): 83.0, ("adalora", "r8"): 84.0, ("lora", "r1"): 78.0,
           ("adalora", "r1"): 80.0}
SUMMARY_BASE = {("lora", "r16"): 0.39, ("adalora", "r16"): 0.40, ("sora", "r16"): 0.41, ("lora", "r4"): 0.385,
                ("lora", "r2"): 0.37, ("adalora", "r2"): 0.38}
SQUAD_DATA = {"squad": "../shared/data/squad/dev-v1.1.json",
              "squad_v2": "../shared/data/squad/dev-v2.0-cs224n-half.json"}


def qa_metrics(task: str, base: float, seed: int) -> dict[str, dict[str, float]]:
    """Validation (best block; final = best − 1) and test (final block, test_ prefix, never compared)."""
    if task == "squad":
        best = {"exact_match": base + 2 * seed, "f1": base + 6 + 2 * seed}
    else:  # squad_v2: exact/f1 at threshold 0 and, 5 points higher, at the best threshold
        best = {"exact": base - 10 + 2 * seed, "f1": base - 7 + 2 * seed}
        best |= {"best_exact": best["exact"] + 5, "best_f1": best["f1"] + 5, "best_exact_thresh": -1.5,
                 "best_f1_thresh": -1.0}
    final = {name: value - 1 for name, value in best.items()}
    return {"best": best, "final": final | {f"test_{name}": value - 3 for name, value in best.items()}}


def summary_metrics(base: float, seed: int) -> dict[str, dict[str, float]]:
    """Test ROUGE (final block, test_ prefix) = the base formulas; validation 0.05 higher, best 0.01 below it.
    rougeL differs from rougeLsum so a test can tell which one was compared."""
    test = {"loss": 2.0, "rouge1": base + 0.02 * seed, "rouge2": base - 0.2 + 0.02 * seed, "rougeL": base - 0.1,
            "rougeLsum": base - 0.07 + 0.02 * seed}
    validation = {name: value + 0.05 for name, value in test.items()}
    return {"best": {name: value - 0.01 for name, value in validation.items()},
            "final": validation | {f"test_{name}": value for name, value in test.items()}}


def task_record(*, experiment: str, method: str, task: str, budget: str, seed: int, model: str,
                metrics: dict[str, dict[str, float]] | None, data: dict[str, Any], max_eval_samples: int | None = None,
                status: str = "completed") -> dict[str, Any]:
    record = make_record(experiment=experiment, method=method, task=task, budget=budget, seed=seed, model=model,
                         status=status)
    if metrics is not None and status == "completed":
        record["metrics"] = {"main_metric": "loss" if "loss" in metrics["best"] else "f1", **metrics,
                             "best_step": 900}
    record["data"] = data
    record["config"]["task"] = {"name": task, "max_eval_samples": max_eval_samples, "max_train_samples": None}
    return record


def qa_records() -> list[dict[str, Any]]:
    """DeBERTaV3-base on SQuAD v1.1/v2.0: lora/adalora at r8 and r1 plus full FT, seeds 0 and 1, from an article
    split of the dev files, except: lora r8 SQuAD v1.1 ran on the hub's official dev set (like for like), full FT
    (seed 0 only) on the hub but capped at 500 questions, and adalora r8 has no SQuAD v2.0 run."""
    records = []
    for (method, budget), base in QA_BASE.items():
        for task in ("squad", "squad_v2"):
            if (method, budget, task) in {("adalora", "r8", "squad_v2"), ("full", "none", "squad_v2")}:
                continue
            for seed in (0,) if method == "full" else (0, 1):
                data = {"source": SQUAD_DATA[task], "protocol": "article_split", "split_seed": 42}
                if (method, budget) in {("lora", "r8"), ("full", "none")}:
                    data = {"source": f"hub:rajpurkar/{task}", "protocol": "official dev"}
                records.append(task_record(experiment="adalora_squad", method=method, task=task, budget=budget,
                                           seed=seed, model=QA_MODEL, metrics=qa_metrics(task, base, seed),
                                           data=data, max_eval_samples=500 if method == "full" else None))
    return records


def summary_records() -> list[dict[str, Any]]:
    """BART-large on XSum (hub, like for like) and CNN/DailyMail (a by-document split of one local file): lora
    and adalora at r16 and r2 on XSum with seeds 0 and 1, lora r16 on CNN/DM with seed 0 only; sora r16 and
    lora r4 on XSum (the paper has neither); and a failed run."""
    xsum = {"source": "hub:EdinburghNLP/xsum", "protocol": "adalora"}
    cnn = {"source": "../shared/data/summarization/cnn_dailymail/test.jsonl", "split": "by document",
           "split_seed": 42, "protocol": "adalora"}
    records = []
    for (method, budget), base in SUMMARY_BASE.items():
        for seed in (0, 1):
            records.append(task_record(experiment="adalora_xsum", method=method, task="xsum", budget=budget,
                                       seed=seed, model=SUMMARY_MODEL, metrics=summary_metrics(base, seed),
                                       data=xsum))
    records.append(task_record(experiment="adalora_xsum", method="lora", task="cnn_dailymail", budget="r16",
                               seed=0, model=SUMMARY_MODEL, metrics=summary_metrics(0.42, 0), data=cnn))
    records.append(task_record(experiment="adalora_xsum", method="adalora", task="xsum", budget="r16", seed=9,
                               model=SUMMARY_MODEL, metrics=None, data=xsum, status="failed"))
    return records
