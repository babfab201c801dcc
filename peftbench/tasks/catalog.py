"""The task catalogue, torch-free: what each task is called, how it is scored and which way is better.

Tasks are data: ``conf/task/<name>.yaml`` names the task's family, label, metrics, main metric, table columns and
source. This module reads those files with PyYAML only, so the analysis layer and the CLI's help can use it
without the training stack. Every metric a family computes is listed in :data:`METRICS` with its direction.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

TASK_DIR = Path(__file__).resolve().parents[2] / "conf" / "task"


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    higher_is_better: bool = True


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("accuracy", "Acc"),
    Metric("f1", "F1"),
    Metric("matthews_correlation", "MCC"),
    Metric("pearson", "Pearson"),
    Metric("spearman", "Spearman"),
    Metric("correlation", "Corr"),  # AdaLoRA's STS-B score: mean of Pearson and Spearman
    Metric("loss", "Loss", higher_is_better=False),
    Metric("exact_match", "EM"),  # SQuAD v1.1 (percent)
    Metric("exact", "EM"),  # SQuAD v2.0 at the null threshold 0 (percent); f1 above is its F1
    Metric("HasAns_exact", "HasAns EM"),
    Metric("HasAns_f1", "HasAns F1"),
    Metric("NoAns_exact", "NoAns EM"),
    Metric("NoAns_f1", "NoAns F1"),
    Metric("best_exact", "best EM"),  # at the best null threshold (official evaluate-v2.0)
    Metric("best_f1", "best F1"),
    Metric("best_exact_thresh", "best EM thresh"),  # a threshold, not a score: its direction means nothing
    Metric("best_f1_thresh", "best F1 thresh"),
    Metric("total", "questions"),
    Metric("HasAns_total", "HasAns questions"),
    Metric("NoAns_total", "NoAns questions"),
    Metric("rouge1", "R-1"),
    Metric("rouge2", "R-2"),
    Metric("rougeL", "R-L"),  # sentence-free LCS
    Metric("rougeLsum", "R-Lsum"),  # summary-level LCS over sentences (the papers' "ROUGE-L" for summarization)
)}


@dataclass(frozen=True)
class TaskInfo:
    name: str
    family: str
    label: str
    metrics: tuple[str, ...]
    main_metric: str
    columns: tuple[tuple[str, str], ...]  # (metric column of run.json, short header) shown in budget tables

    @property
    def higher_is_better(self) -> bool:
        return metric(self.main_metric).higher_is_better


def metric(name: str) -> Metric:
    """Metadata of a metric column; set-prefixed columns (``mismatched_accuracy``, ``test_f1``) take the
    direction of the metric they end with."""
    if name in METRICS:
        return METRICS[name]
    for known in sorted(METRICS, key=len, reverse=True):
        if name.endswith(f"_{known}"):
            return METRICS[known]
    return Metric(name, name)


@functools.cache
def tasks() -> dict[str, TaskInfo]:
    """Every task defined under conf/task, by name."""
    return {path.stem: _info(path.stem, yaml.safe_load(path.read_text())) for path in sorted(TASK_DIR.glob("*.yaml"))}


def _info(name: str, node: dict[str, Any]) -> TaskInfo:
    columns = tuple((str(k), str(v)) for k, v in (node.get("columns") or {node["main_metric"]: None}).items())
    columns = tuple((k, v if v != "None" else metric(k).label) for k, v in columns)
    return TaskInfo(name=name, family=node["family"], label=node.get("label") or name,
                    metrics=tuple(node["metrics"]), main_metric=node["main_metric"], columns=columns)


def task(name: str) -> TaskInfo:
    known = tasks()
    if name not in known:
        raise KeyError(f"unknown task {name!r}; choose one of: {', '.join(sorted(known))}")
    return known[name]


def label(name: str) -> str:
    """Display name of a task; an unknown task shows its own name."""
    return tasks()[name].label if name in tasks() else name
