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
    if completed:
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
