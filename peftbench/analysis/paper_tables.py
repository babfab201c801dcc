"""Our runs against AdaLoRA Table 2 (DeBERTaV3-base, SQuAD v1.1/v2.0, EM/F1) and Table 3 (BART-large, XSum and
CNN/DailyMail, ROUGE-1/2/L): one line per cell the paper prints and we ran, with ours, the paper's and ours − paper.

Which runs: completed runs of the table's model (``tables.REFERENCE_MODELS``) on its tasks. Budgets match by name:
the reference CSVs carry ``budget_name`` (r1/r2/r4/r8 for Table 2's 0.08/0.16/0.32/0.65%, r16/r8/r2/r1 for Table
3's 2.20/1.10/0.26/0.13%, ``none`` for Full FT), the budgets of conf/budget/*.yaml whose ``reference:`` entries
give the same percentages. Which numbers:

* Table 2 prints dev-set EM/F1. Ours come from the validation set, in the block the report asks for
  (``metrics.best`` by default, selected on that same set, or ``metrics.final``). SQuAD v2.0's EM/F1 are the
  record's ``exact``/``f1``: the official v2.0 script at null threshold 0, which is what HF ``run_qa`` (the base
  of AdaLoRA's QA code) reports as EM/F1; ``best_exact``/``best_f1`` pick the threshold on the evaluated set
  itself and are not used. The paper evaluates on the whole official dev set; offline, our validation set is a
  seeded article split of a dev file, so such rows say "not like for like".
* Table 3 prints test-set ROUGE. Ours are the ``test_`` metrics of ``metrics.final`` (the test set is scored
  once, after the last step), whatever block the report uses for the other tables. The paper's ROUGE-L is
  summary-level ROUGE-L (HF ``run_summarization``'s ``rougeLsum``; sentence-free ``rougeL`` is ~30 on CNN/DM),
  so the CSV's ``rougeL`` is compared with the record's ``rougeLsum``.

Both sets of numbers are in percent (``tables.metric_scale``: SQuAD EM/F1 are recorded in percent, ROUGE as
fractions). A run's data provenance comes from its record (``data``: source, protocol or split, and
``config.task.max_eval_samples``); a cell is like for like only when every run in it evaluated the paper's full
evaluation set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from peftbench.analysis import tables
from peftbench.analysis.style import task_label


@dataclass(frozen=True)
class PaperTable:
    name: str  # reference CSV stem under peftbench/analysis/reference
    title: str
    model: str  # the backbone the paper's table reports (conf/model name)
    split: str  # "validation": the report's metric block; "test": metrics.final test_<metric>
    setting: str  # what the paper evaluated, for captions


PAPER_TABLES = {
    "adalora_table2": PaperTable("adalora_table2", "AdaLoRA Table 2", "deberta_v3_base", "validation",
                                 "DeBERTaV3-base, SQuAD v1.1 and v2.0, full official dev sets, EM/F1"),
    "adalora_table3": PaperTable("adalora_table3", "AdaLoRA Table 3", "bart_large", "test",
                                 "BART-large, XSum and CNN/DailyMail test sets, ROUGE-1/2/L"),
}
# The paper's metric -> the record's column, where the names differ (see the module docstring).
RECORD_METRIC = {("squad_v2", "exact_match"): "exact", ("xsum", "rougeL"): "rougeLsum",
                 ("cnn_dailymail", "rougeL"): "rougeLsum"}
COLUMNS = ["method", "budget", "paper_budget", "task", "metric", "paper_metric", "source", "ours", "ours_std", "n",
           "paper", "diff", "data", "like_for_like"]


def record_metric(task: str, paper_metric: str) -> str:
    return RECORD_METRIC.get((task, paper_metric), paper_metric)


def source_column(spec: PaperTable, metric: str, metric_kind: str) -> str:
    """The ``results.load`` column our number comes from."""
    return f"final/test_{metric}" if spec.split == "test" else f"{metric_kind}/{metric}"


def data_provenance(record: dict[str, Any]) -> tuple[str, bool]:
    """A short description of what a run evaluated on, and whether that is the paper's full evaluation set:
    the hub's official splits or official local files, not split offline and not capped by max_eval_samples."""
    data = record.get("data") or {}
    if not data:
        return "not recorded", False
    source = str(data.get("source", "unknown"))
    name = source if source.startswith("hub:") else Path(source).name
    if data.get("protocol") == "article_split":  # extractive QA without a training file
        text, same = f"article split of {name} (seed {data.get('split_seed')})", False
    elif data.get("split"):  # seq2seq split_from: one local file split by document
        text, same = f"{data['split']} split of {name} (seed {data.get('split_seed')})", False
    elif source.startswith("hub:"):
        text, same = source, True
    else:
        text, same = f"local {data.get('protocol', 'files')} ({name})", True
    cap = ((record.get("config") or {}).get("task") or {}).get("max_eval_samples")
    if cap is not None:
        text, same = f"{text}, first {cap} eval examples", False
    return text, same


def _provenance(runs: pd.DataFrame, records: dict[str, dict[str, Any]]) -> tuple[str, bool]:
    notes = [data_provenance(records[path]) if path in records else ("not recorded", False) for path in runs["path"]]
    texts = sorted({text for text, _ in notes})
    return "; ".join(texts), bool(notes) and all(same for _, same in notes)


def _paper_order(reference: pd.DataFrame) -> pd.DataFrame:
    """Largest budget first (Full FT's 100% on top), then method in Table 1 order, then the paper's task and
    metric order."""
    tasks = list(dict.fromkeys(reference["task"]))
    metrics = list(dict.fromkeys(reference["metric"]))
    return reference.assign(
        _b=-reference["budget"].str.rstrip("%").astype(float), _m=reference["method"].map(tables._method_key),
        _t=reference["task"].map(tasks.index), _k=reference["metric"].map(metrics.index),
    ).sort_values(["_b", "_m", "_t", "_k"], kind="stable").drop(columns=["_b", "_m", "_t", "_k"])


def compare_paper_table(frame: pd.DataFrame, records: list[dict[str, Any]], name: str, *,
                        metric_kind: str = "best", reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """Ours next to the paper's table ``name`` (``adalora_table2`` or ``adalora_table3``): one line per cell the
    paper prints for a (method, budget) we ran on the table's model and a task we ran (a cell we lack keeps ours
    empty, never filled); columns ``COLUMNS``. ``records`` (``results.iter_records``) give each run's data
    provenance, matched on the record path."""
    spec = PAPER_TABLES[name]
    reference = tables.load_reference(name) if reference is None else reference
    runs = frame[(frame["status"] == "completed") & (frame["model"] == spec.model)
                 & frame["task"].isin(set(reference["task"]))]
    runs = runs.assign(budget=runs["budget"].astype(str))
    ran = set(zip(runs["method"], runs["budget"]))
    ours_rows = np.array([(m, str(b)) in ran for m, b in zip(reference["method"], reference["budget_name"])],
                         dtype=bool)
    paper = reference[ours_rows & reference["task"].isin(set(runs["task"])).to_numpy()]
    by_path = {str(r.get("_path")): r for r in records}
    lines = []
    for row in _paper_order(paper).itertuples(index=False):
        metric = record_metric(row.task, row.metric)
        source = source_column(spec, metric, metric_kind)
        mine = runs[(runs["method"] == row.method) & (runs["budget"] == row.budget_name) & (runs["task"] == row.task)]
        values = (mine[source] if source in mine else pd.Series(dtype=float)).dropna()
        values = values.astype(float) * tables.metric_scale(row.task)
        ours = float(values.mean()) if len(values) else np.nan
        std = float(values.std(ddof=1)) if len(values) > 1 else np.nan
        data, same = _provenance(mine.loc[values.index], by_path) if len(values) else ("", False)
        lines.append({"method": row.method, "budget": row.budget_name, "paper_budget": row.budget, "task": row.task,
                      "metric": metric, "paper_metric": row.metric, "source": source, "ours": ours,
                      "ours_std": std, "n": len(values), "paper": float(row.value),
                      "diff": ours - float(row.value), "data": data, "like_for_like": same})
    return pd.DataFrame(lines, columns=COLUMNS)


def comparison_rows(comparison: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    header = ["Method", "Budget", "Paper budget", "Task", "Metric", "Ours", "Paper", "Ours − paper", "Our data",
              "Like for like"]
    body = []
    for row in comparison.itertuples(index=False):
        missing = np.isnan(row.ours)
        ours = tables.MISSING if missing else tables.format_cell(row.ours, row.ours_std, row.n)
        diff = tables.MISSING if missing else f"{row.diff:+.2f}"
        metric = row.metric if row.metric == row.paper_metric else f"{row.metric} (paper {row.paper_metric})"
        body.append([*tables._row_label(row.method, row.budget), row.paper_budget, task_label(row.task), metric,
                     ours, f"{row.paper:.2f}", diff, row.data or tables.MISSING,
                     tables.MISSING if missing else ("yes" if row.like_for_like else "no")])
    return header, body


def comparison_caption(name: str, model: str, metric_kind: str) -> str:
    spec = PAPER_TABLES[name]
    if spec.split == "test":
        ours = ("ours: test set scored once after the last step (metrics.final test_*), ROUGE ×100; ROUGE-L is "
                "summary-level rougeLsum (the paper's ROUGE-L)")
    else:
        ours = (f"ours: validation set, {tables.metric_source(metric_kind)}, EM/F1 in percent; SQuAD v2.0 EM/F1 "
                "= exact/f1 at null threshold 0 (not best_exact/best_f1)")
    return (f"{model} against {spec.title} (Zhang et al., ICLR 2023; {spec.setting}); {ours}. Budget: ours as "
            f"recorded, paper's as printed (% of the backbone). Like for like: every run evaluated the paper's "
            f"full evaluation set; an offline split or a max_eval_samples cap is not. {tables.MISSING}: no "
            f"completed run of ours.")


def comparison_markdown(comparison: pd.DataFrame, name: str, model: str, metric_kind: str) -> str:
    header, body = comparison_rows(comparison)
    return f"{comparison_caption(name, model, metric_kind)}\n\n{tables.markdown_table(header, body)}"


def comparison_latex(comparison: pd.DataFrame, name: str, model: str, metric_kind: str) -> str:
    header, body = comparison_rows(comparison)
    rows = list(zip(comparison["method"], comparison["budget"]))
    breaks = {i for i in range(1, len(rows)) if rows[i] != rows[i - 1]}
    return tables.latex_table(header, body, comparison_caption(name, model, metric_kind), breaks)


def comparison_csv(comparison: pd.DataFrame, model: str) -> str:
    return comparison.assign(model=model)[["model", *COLUMNS]].to_csv(index=False, lineterminator="\n")
