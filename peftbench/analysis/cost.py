"""Training cost in the shape of AdaLoRA Table 15: per model × task × method × budget, wall time, optimizer
steps, throughput (examples/s, tokens/s) and peak memory, each with its ratio to a reference method (LoRA by
default) on the same model, task and budget.

Sources, per completed run. ``record["cost"]`` (device, optimizer_steps, examples_seen, tokens_seen = non-padding
input tokens) when the run wrote it; otherwise steps = ``total_steps`` and examples are estimated as steps ×
``config.trainer.batch_size`` × ``gradient_accumulation_steps`` (the global batch per optimizer step; an
upper bound, as an epoch's last batch can be short) and tokens are unknown, shown as a gap, never 0.
Throughput is examples (tokens) seen / ``wall_time_s``: end to end, evaluation and checkpointing included, as
a researcher pays it. Each cell is the mean over the group's runs (seeds); a ratio across different devices
would compare hardware, not methods, so it is left out and the note says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from peftbench.analysis import tables
from peftbench.analysis.style import method_label, task_label

GROUP = ["model", "task", "method", "budget"]
# (column, display name, digits): the quantities averaged over runs and compared with the reference.
QUANTITIES = (("wall_time_min", "Wall time (min)", 1), ("optimizer_steps", "Steps", 0),
              ("examples_per_s", "Examples/s", 1), ("tokens_per_s", "Tokens/s", 0),
              ("cpu_rss_mb", "Peak CPU RSS (MB)", 0), ("cuda_mb", "Peak CUDA (MB)", 0))
UNKNOWN_DEVICE = "unknown"


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else np.nan


def estimated_examples(record: dict[str, Any], steps: float) -> float:
    """Optimizer steps × global batch (batch_size × gradient_accumulation_steps); NaN without a batch size."""
    trainer = (record.get("config") or {}).get("trainer") or {}
    accumulation = trainer.get("gradient_accumulation_steps") or 1
    return steps * _number(trainer.get("batch_size")) * _number(accumulation)


def run_cost(record: dict[str, Any]) -> dict[str, Any]:
    """One run's cost line: recorded ``cost`` first, the fallbacks above otherwise (``examples_source`` says
    which)."""
    cost = record.get("cost") or {}
    memory = record.get("peak_memory_mb") or {}
    steps = _number(cost.get("optimizer_steps", record.get("total_steps")))
    recorded = cost.get("examples_seen") is not None
    examples = _number(cost["examples_seen"]) if recorded else estimated_examples(record, steps)
    wall = _number(record.get("wall_time_s"))
    wall = wall if wall > 0 else np.nan  # a zero wall time would give an infinite throughput
    return {**{key: str(record.get(key)) for key in GROUP}, "seed": record.get("seed"),
            "device": str(cost.get("device") or UNKNOWN_DEVICE), "wall_time_min": wall / 60,
            "optimizer_steps": steps, "examples": examples, "examples_per_s": examples / wall,
            "tokens_per_s": _number(cost.get("tokens_seen")) / wall,
            "examples_source": "recorded" if recorded else "estimated (steps × batch)",
            "cpu_rss_mb": _number(memory.get("cpu_rss")), "cuda_mb": _number(memory.get("cuda"))}


def run_costs(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One line per completed run."""
    lines = [run_cost(r) for r in records if r.get("status") == "completed"]
    return pd.DataFrame(lines, columns=[*GROUP, "seed", "device", "wall_time_min", "optimizer_steps", "examples",
                                        "examples_per_s", "tokens_per_s", "examples_source", "cpu_rss_mb",
                                        "cuda_mb"])


def _mean(values: pd.Series) -> float:
    """Mean over runs, NaN if any run lacks the number: a mean of the runs that have it would describe a
    different set of runs than the other columns."""
    return float(values.mean()) if values.notna().all() and len(values) else np.nan


def group_costs(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean of each quantity per (model, task, method, budget), with the run count, devices and whether
    the example counts were recorded or estimated."""
    lines = []
    for key, group in runs.groupby(GROUP, sort=False):
        line = dict(zip(GROUP, key), n=len(group), device=", ".join(sorted(set(group["device"]))),
                    examples_source=", ".join(sorted(set(group["examples_source"]))))
        lines.append(line | {name: _mean(group[name]) for name, _, _ in QUANTITIES})
    return pd.DataFrame(lines, columns=[*GROUP, "n", "device", "examples_source", *(q[0] for q in QUANTITIES)])


def _ratio_note(row: dict[str, Any], ref: dict[str, Any] | None, reference: str) -> str:
    """Why no ratio: no reference group, or not one and the same device on both sides ("" = ratio given)."""
    if ref is None:
        return f"no {method_label(reference)} run at this budget"
    if ref["device"] != row["device"] or "," in row["device"]:
        return "devices differ"
    return ""


def add_ratios(costs: pd.DataFrame, reference: str) -> pd.DataFrame:
    """``ratio_<quantity>`` = this group's mean / the reference method's mean on the same model, task and
    budget; NaN without a reference group or when the two ran on different devices (``ratio_note``)."""
    index = {tuple(row[k] for k in ("model", "task", "budget")): row
             for row in costs.to_dict("records") if row["method"] == reference}
    ratios, notes = {name: [] for name, _, _ in QUANTITIES}, []
    for row in costs.to_dict("records"):
        ref = index.get((row["model"], row["task"], row["budget"]))
        note = _ratio_note(row, ref, reference)
        notes.append(note)
        for name in ratios:
            ratios[name].append(np.nan if note else row[name] / ref[name] if ref[name] else np.nan)
    return costs.assign(reference=reference, ratio_note=notes, **{f"ratio_{k}": v for k, v in ratios.items()})


@dataclass
class CostTable:
    model: str
    reference: str
    quantities: list[tuple[str, str, int]]  # the QUANTITIES shown: all, less CUDA memory when nobody used a GPU
    rows: pd.DataFrame  # group_costs + add_ratios lines of this model, in display order


def cost_table(records: list[dict[str, Any]], model: str, reference: str = "lora") -> CostTable:
    """Cost lines of one model's completed runs, ordered by task, then the budget tables' row order."""
    runs = run_costs([r for r in records if str(r.get("model")) == model])
    costs = add_ratios(group_costs(runs), reference)
    order = {row: i for i, row in enumerate(tables.ordered_rows(costs))}
    costs = costs.assign(_t=costs["task"].map(tables.task_key),
                         _r=[order[(m, b)] for m, b in zip(costs["method"], costs["budget"])])
    costs = costs.sort_values(["_t", "_r"]).drop(columns=["_t", "_r"]).reset_index(drop=True)
    # Unknown tokens stay a visible gap; the CUDA column is left out only when no run used a GPU.
    shown = [q for q in QUANTITIES if q[0] != "cuda_mb" or costs["cuda_mb"].notna().any()]
    return CostTable(model, reference, shown, costs)


def cost_cell(value: float, ratio: float, digits: int, is_reference: bool) -> str:
    """``value (×ratio)``; the reference row shows its value only, a missing number shows a gap."""
    if np.isnan(value):
        return tables.MISSING
    text = f"{value:,.{digits}f}"
    return text if is_reference or np.isnan(ratio) else f"{text} (×{ratio:.2f})"


def cost_rows(table: CostTable) -> tuple[list[str], list[list[str]]]:
    header = ["Task", "Method", "Budget", "n", "Device"] + [label for _, label, _ in table.quantities] + ["Note"]
    body = []
    for row in table.rows.to_dict("records"):
        is_reference = row["method"] == table.reference
        notes = [row["ratio_note"]] if row["ratio_note"] and not is_reference else []
        notes += ["examples estimated from steps × batch"] if "estimated" in row["examples_source"] else []
        cells = [cost_cell(row[name], row[f"ratio_{name}"], digits, is_reference)
                 for name, _, digits in table.quantities]
        body.append([task_label(row["task"]), method_label(row["method"]), row["budget"], str(row["n"]),
                     row["device"], *cells, "; ".join(notes) or tables.MISSING])
    return header, body


def cost_caption(table: CostTable) -> str:
    reference = method_label(table.reference)
    return (f"{table.model}: training cost (the shape of AdaLoRA Table 15), mean over the n completed runs. "
            f"(×r): ratio to {reference} on the same task and budget, only on the same device. Wall time: "
            f"wall_time_s of the whole run, evaluation included. Steps: optimizer steps. Examples/s and "
            f"tokens/s: seen during training / wall time; tokens are non-padding input tokens, "
            f"{tables.MISSING} when the run did not record them. Peak memory: process RSS and CUDA max "
            f"allocated (peak_memory_mb).")


def cost_markdown(table: CostTable) -> str:
    header, body = cost_rows(table)
    return f"{cost_caption(table)}\n\n{tables.markdown_table(header, body)}"


def cost_latex(table: CostTable) -> str:
    header, body = cost_rows(table)
    tasks = list(table.rows["task"])
    breaks = {i for i in range(1, len(tasks)) if tasks[i] != tasks[i - 1]}
    return tables.latex_table(header, body, cost_caption(table), breaks)


def cost_csv(table: CostTable) -> str:
    """Tidy, full precision: every quantity and its ratio, NaN for a gap."""
    return table.rows.to_csv(index=False, lineterminator="\n")
