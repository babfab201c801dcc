"""Budget tables in the layout of AdaLoRA Table 1: rows = method × budget, columns = task metrics + average.

Cells are mean ± sample standard deviation (ddof=1) over seeds, on the papers' percent scale (fractions ×100, see
``metric_scale``), with the seed count n.
A cell without a completed run stays missing ("–"); nothing is imputed. The long ``cells`` frame is the
single source for the Markdown, LaTeX and CSV renderings, so the three always agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from peftbench.analysis.style import method_label, task_label
from peftbench.tasks import catalog

# AdaLoRA Table 1 column order (a presentation choice); tasks outside GLUE follow, then anything else
# alphabetically. Which metric columns a task shows, and their headers, come from the task catalogue
# (conf/task/<task>.yaml `columns`, read torch-free by peftbench.tasks.catalog).
TASK_ORDER = ("mnli", "sst2", "cola", "qqp", "qnli", "rte", "mrpc", "stsb", "rotten_tomatoes")
METHOD_ORDER = ("full", "bitfit", "houlsby", "pfeiffer", "parallel", "prefix", "ptuning_v2", "mam", "prompt",
                "ptuning", "lora", "qlora", "adalora", "sora")  # AdaLoRA Table 1's order, the zoo in between
# AdaLoRA Table 7: rank budgets and parameter budgets name the same rows of Table 1.
BUDGET_GROUPS = {"r8": "1.2M", "r4": "0.6M", "r2": "0.3M"}
AVERAGE = ("average", "score")
# The backbone each shipped reference table reports (config name of conf/model/*.yaml); comparing another
# model with it would be meaningless.
REFERENCE_MODELS = {"adalora_table1": "deberta_v3_base", "adalora_table2": "deberta_v3_base",
                    "adalora_table3": "bart_large"}
MISSING = "–"
# The papers print percentages. Records keep each family's own scale: classification metrics and ROUGE
# (peftbench/tasks/seq2seq/rouge.py) are fractions in [0, 1], while the extractive_qa family reports EM/F1 in
# percent as the official SQuAD scripts do (peftbench/tasks/extractive_qa/metrics.py). The scale lives here, by
# family, rather than in the task catalogue (which belongs to the task layer); a new family recording percent
# must be added to this set.
PERCENT_FAMILIES = frozenset({"extractive_qa"})
OPTIMISTIC = "best checkpoint (metrics.best), selected on the reported (validation) set — optimistic"
REFERENCE_DIR = Path(__file__).parent / "reference"


@dataclass(frozen=True)
class Column:
    task: str
    metric: str
    label: str


@dataclass
class BudgetTable:
    """Everything a rendering needs. ``cells``: one row per (method, budget, task, metric) that has a value,
    columns method, budget, budget_group, task, metric, mean, std, n, best."""

    model: str
    metric_kind: str  # "best" or "final": which block of run.json["metrics"] the numbers come from
    params_kind: str  # "effective", "trainable" or "adapter": which parameters["..."] the #Params column shows
    columns: list[Column]
    rows: list[tuple[str, str]]  # (method, budget) in display order
    params: dict[tuple[str, str], str]
    cells: pd.DataFrame


def budget_group(budget: str) -> str:
    return BUDGET_GROUPS.get(str(budget), str(budget))


def _budget_key(budget: str) -> tuple[int, float, str]:
    """Paper order: no budget (Full FT, BitFit) first, then the largest budget down to the smallest."""
    group = budget_group(budget)
    if group == "none":
        return (0, 0.0, group)
    match = re.fullmatch(r"([\d.]+)([KMB]?)", group)
    if match:
        return (1, -float(match[1]) * {"": 1, "K": 1e3, "M": 1e6, "B": 1e9}[match[2]], group)
    match = re.fullmatch(r"r(\d+)", group)
    if match:
        return (2, -float(match[1]), group)
    return (3, 0.0, group)


def _method_key(method: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), method)


def ordered_rows(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(method, budget) pairs in paper order: budget groups from no budget down to the smallest, then method."""
    return sorted({(m, str(b)) for m, b in zip(frame["method"], frame["budget"])},
                  key=lambda row: (_budget_key(row[1]), _method_key(row[0]), row[1]))


def task_key(task: str) -> tuple[int, str]:
    """Column order of tasks: AdaLoRA Table 1 first, then the rest alphabetically."""
    return (TASK_ORDER.index(task) if task in TASK_ORDER else len(TASK_ORDER), task)


def table_columns(frame: pd.DataFrame) -> list[Column]:
    """Columns for the tasks present in ``frame`` (the catalogue's ``columns``); an unknown task shows its main
    metric."""
    tasks = sorted(frame["task"].unique(), key=task_key)
    columns = []
    for task in tasks:
        metrics = catalog.tasks()[task].columns if task in catalog.tasks() else None
        if metrics is None:
            main = frame.loc[frame["task"] == task, "main_metric"].dropna()
            metrics = ((main.iloc[0], main.iloc[0]),) if len(main) else ()
        columns += [Column(task, metric, f"{task_label(task)} {label}") for metric, label in metrics]
    return columns


def metric_scale(task: str) -> float:
    """Factor that puts a task's recorded metrics on the papers' percent scale: 1 for a family that records
    percent already (SQuAD EM/F1), 100 for fractions (GLUE, ROUGE) and for tasks outside the catalogue."""
    info = catalog.tasks().get(task)
    return 1.0 if info is not None and info.family in PERCENT_FAMILIES else 100.0


def seed_scores(frame: pd.DataFrame, columns: list[Column], metric_kind: str) -> pd.DataFrame:
    """Long frame method, budget, task, metric, seed, value (percent, ``metric_scale``): one value per run and
    table column."""
    parts = []
    for column in columns:
        source = f"{metric_kind}/{column.metric}"
        runs = frame[frame["task"] == column.task]
        if source not in runs or runs.empty:
            continue
        part = runs[["method", "budget", "seed"]].assign(task=column.task, metric=column.metric,
                                                          value=runs[source] * metric_scale(column.task))
        parts.append(part.dropna(subset=["value"]))
    if not parts:
        return pd.DataFrame(columns=["method", "budget", "seed", "task", "metric", "value"])
    return pd.concat(parts, ignore_index=True)


def summarize(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std (ddof=1; NaN for one seed) and seed count per (method, budget, task, metric)."""
    grouped = scores.groupby(["method", "budget", "task", "metric"], sort=False)["value"]
    return grouped.agg(mean="mean", std=lambda v: v.std(ddof=1), n="count").reset_index()


def add_average(summary: pd.DataFrame, columns: list[Column], rows: list[tuple[str, str]]) -> pd.DataFrame:
    """The papers' average: mean over tasks of each task's mean metric (MNLI m/mm and QQP acc/F1 first
    averaged), and only for rows that have every column; a partial average would not be comparable."""
    extra = []
    for method, budget in rows:
        mine = summary[(summary["method"] == method) & (summary["budget"] == budget)]
        if len(mine) < len(columns):
            continue
        value = mine.groupby("task")["mean"].mean().mean()
        extra.append({"method": method, "budget": budget, "task": AVERAGE[0], "metric": AVERAGE[1],
                      "mean": value, "std": np.nan, "n": np.nan})
    return pd.concat([summary, pd.DataFrame(extra)], ignore_index=True) if extra else summary


def mark_best(cells: pd.DataFrame) -> pd.DataFrame:
    """Bold the best mean per budget group and column, in the metric's direction (the catalogue's
    ``higher_is_better``: a loss is best when lowest); a group with a single value has nothing to compare, so
    nothing is bold there."""
    higher = cells["metric"].map(lambda name: catalog.metric(str(name)).higher_is_better)
    cells = cells.assign(budget_group=cells["budget"].map(budget_group), signed=cells["mean"].where(higher,
                                                                                                   -cells["mean"]))
    keys = ["budget_group", "task", "metric"]
    top = cells.groupby(keys)["signed"].transform("max")
    size = cells.groupby(keys)["mean"].transform("count")
    return cells.assign(best=(size > 1) & np.isclose(cells["signed"], top)).drop(columns="signed")


def format_count(count: float) -> str:
    if count >= 1e6:
        return f"{count / 1e6:.2f}M"
    if count >= 1e3:
        return f"{count / 1e3:.1f}K"
    return f"{int(count)}"


def params_text(runs: pd.DataFrame, params_kind: str) -> str:
    """The row's parameter count; a range when it differs across runs (task heads differ in size)."""
    column = f"params/{params_kind}"
    values = runs[column].dropna() if column in runs else pd.Series(dtype=float)
    if values.empty:
        return MISSING
    low, high = format_count(values.min()), format_count(values.max())
    return low if low == high else f"{low}–{high}"


def budget_table(frame: pd.DataFrame, *, metric_kind: str = "best", params_kind: str = "effective") -> BudgetTable:
    """Build the table from ``results.load(...)`` rows of one model; failed and running runs are dropped."""
    frame = frame[frame["status"] == "completed"]
    models = frame["model"].unique()
    if len(models) != 1:
        raise ValueError(f"a budget table covers one model, got {sorted(models)}; filter the frame first")
    columns = table_columns(frame)
    rows = ordered_rows(frame)
    frame = frame.assign(budget=frame["budget"].astype(str))
    summary = summarize(seed_scores(frame, columns, metric_kind))
    cells = mark_best(add_average(summary, columns, rows))
    cells["n"] = cells["n"].astype("Int64")  # seed counts; the average row has none
    params = {row: params_text(frame[(frame["method"] == row[0]) & (frame["budget"] == row[1])], params_kind)
              for row in rows}
    return BudgetTable(models[0], metric_kind, params_kind, columns, rows, params, cells)


def format_cell(mean: float, std: float, n: float) -> str:
    spread = "" if np.isnan(std) else f" ± {std:.2f}"
    return f"{mean:.2f}{spread} (n={int(n)})"


def _cell_lookup(table: BudgetTable) -> dict[tuple[str, str, str, str], pd.Series]:
    return {(c.method, c.budget, c.task, c.metric): c for c in table.cells.itertuples(index=False)}


def _row_label(method: str, budget: str) -> tuple[str, str]:
    # The budget as recorded: "r2" is ~0.3M only on DeBERTaV3-base, so the group name is used for bolding
    # and paper matching but not printed; the #Params column gives the real count.
    return method_label(method), budget


def table_rows(table: BudgetTable, *, latex: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and body cells as strings, bold already applied."""
    lookup = _cell_lookup(table)
    keys = [(c.task, c.metric) for c in table.columns] + [AVERAGE]
    header = ["Method", "Budget", f"#Params ({table.params_kind})"] + [c.label for c in table.columns] + ["Avg"]
    body = []
    for method, budget in table.rows:
        line = [*_row_label(method, budget), table.params[(method, budget)]]
        for task, metric in keys:
            cell = lookup.get((method, budget, task, metric))
            if cell is None:
                line.append(MISSING)
                continue
            text = f"{cell.mean:.2f}" if (task, metric) == AVERAGE else format_cell(cell.mean, cell.std, cell.n)
            line.append((f"\\textbf{{{text}}}" if latex else f"**{text}**") if cell.best else text)
        body.append(line)
    return header, body


def caption(table: BudgetTable) -> str:
    source = metric_source(table.metric_kind)
    return (f"{table.model}: {source}, in percent (fractions ×100). Cells: mean ± sample std (ddof=1) over n "
            f"seeds. Bold: best in its budget group. #Params: parameters.{table.params_kind} (range across tasks "
            f"when heads differ). "
            f"Avg: mean over tasks of each task's mean, only when every task is present. {MISSING}: no completed run.")


def metric_source(metric_kind: str) -> str:
    """How a caption names the numbers. The best checkpoint is chosen on the same dev set it is reported on,
    so its numbers are biased upwards; the caption says so wherever they appear."""
    if metric_kind == "best":
        return OPTIMISTIC
    return "end of training (metrics.final)"


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    align = ["---" if i < 2 else "---:" for i in range(len(header))]
    lines = [header, align, *body]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines) + "\n"


def _escape(text: str) -> str:
    """LaTeX special characters that occur in our labels (column names, budgets like 0.65%)."""
    for char in "%_#&":
        text = text.replace(char, "\\" + char)
    return text


def latex_table(header: list[str], body: list[list[str]], caption_text: str, breaks: set[int]) -> str:
    """booktabs tabular inside a table float; ``breaks`` are body indices that start a new budget group."""
    lines = ["% needs \\usepackage{booktabs}", "\\begin{table}[t]", "\\centering", "\\small",
             f"\\begin{{tabular}}{{ll{'r' * (len(header) - 2)}}}", "\\toprule",
             " & ".join(_escape(h) for h in header) + " \\\\", "\\midrule"]
    for index, line in enumerate(body):
        if index in breaks:
            lines.append("\\midrule")
        lines.append(" & ".join(_escape(cell) for cell in line) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", f"\\caption{{{_escape(caption_text)}}}", "\\end{table}"]
    text = "\n".join(lines) + "\n"
    for plain, latex in (("–", "--"), ("±", "$\\pm$"), ("×", "$\\times$"), ("−", "$-$")):
        text = text.replace(plain, latex)
    return text


def group_breaks(rows: list[tuple[str, str]]) -> set[int]:
    groups = [budget_group(budget) for _, budget in rows]
    return {i for i in range(1, len(groups)) if groups[i] != groups[i - 1]}


def to_markdown(table: BudgetTable) -> str:
    header, body = table_rows(table)
    return f"{caption(table)}\n\n{markdown_table(header, body)}"


def to_latex(table: BudgetTable) -> str:
    header, body = table_rows(table, latex=True)
    return latex_table(header, body, caption(table), group_breaks(table.rows))


def to_csv(table: BudgetTable) -> str:
    """Tidy: one line per cell (plus the average), full precision, with the row's #Params text."""
    cells = table.cells.assign(model=table.model, metric_kind=table.metric_kind,
                               params=[table.params[(m, b)] for m, b in zip(table.cells["method"],
                                                                            table.cells["budget"])])
    order = {row: i for i, row in enumerate(table.rows)}
    columns = [(c.task, c.metric) for c in table.columns] + [AVERAGE]
    cells = cells.assign(_row=[order[(m, b)] for m, b in zip(cells["method"], cells["budget"])],
                         _col=[columns.index((t, m)) for t, m in zip(cells["task"], cells["metric"])])
    cells = cells.sort_values(["_row", "_col"]).rename(columns={"params": f"params_{table.params_kind}"})
    keep = ["model", "method", "budget", "budget_group", f"params_{table.params_kind}", "task", "metric",
            "metric_kind", "mean", "std", "n", "best"]
    return cells[keep].to_csv(index=False, lineterminator="\n")


def load_reference(name: str = "adalora_table1") -> pd.DataFrame:
    """A shipped table of published numbers (see reference/README.md for the source and conventions)."""
    return pd.read_csv(REFERENCE_DIR / f"{name}.csv", comment="#", dtype={"budget": str, "params": str})


def compare_with_paper(table: BudgetTable, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """Our cells next to the paper's: method, budget, task, metric, ours (mean, std, n), paper, diff
    (ours − paper). Only cells the paper reports are listed; a paper cell we lack keeps ours empty. The
    average is compared only when our table covers every task of the paper's average (else it averages
    different tasks)."""
    reference = load_reference() if reference is None else reference
    paper = reference.rename(columns={"budget": "budget_group", "value": "paper", "params": "paper_params"})
    ours = table.cells.rename(columns={"mean": "ours", "std": "ours_std", "n": "n"})
    rows = pd.DataFrame(table.rows, columns=["method", "budget"]).assign(
        budget_group=lambda f: f["budget"].map(budget_group))
    keys = [(c.task, c.metric) for c in table.columns]
    if set(reference["task"]) - {AVERAGE[0]} <= {task for task, _ in keys}:
        keys.append(AVERAGE)
    columns = pd.DataFrame(keys, columns=["task", "metric"])
    grid = rows.merge(columns, how="cross")
    merged = grid.merge(paper, on=["method", "budget_group", "task", "metric"], how="inner")
    merged = merged.merge(ours[["method", "budget", "task", "metric", "ours", "ours_std", "n"]],
                          on=["method", "budget", "task", "metric"], how="left")
    merged["diff"] = merged["ours"] - merged["paper"]
    return merged[["method", "budget", "budget_group", "paper_params", "task", "metric", "ours", "ours_std", "n",
                   "paper", "diff"]]


def comparison_rows(comparison: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    header = ["Method", "Budget", "Task", "Metric", "Ours", "Paper", "Ours − paper"]
    body = []
    for row in comparison.itertuples(index=False):
        ours = MISSING if np.isnan(row.ours) else (
            f"{row.ours:.2f}" if (row.task, row.metric) == AVERAGE else format_cell(row.ours, row.ours_std, row.n))
        diff = MISSING if np.isnan(row.diff) else f"{row.diff:+.2f}"
        body.append([*_row_label(row.method, row.budget), task_label(row.task), row.metric, ours,
                     f"{row.paper:.2f}", diff])
    return header, body


def comparison_markdown(comparison: pd.DataFrame, model: str) -> str:
    header, body = comparison_rows(comparison)
    note = (f"{model} against AdaLoRA Table 1 (Zhang et al., ICLR 2023; DeBERTaV3-base, mean of 5 seeds), ×100. "
            f"{MISSING}: no completed run of ours.")
    return f"{note}\n\n{markdown_table(header, body)}"


def comparison_latex(comparison: pd.DataFrame, model: str) -> str:
    header, body = comparison_rows(comparison)
    rows = list(zip(comparison["method"], comparison["budget"]))
    breaks = {i for i in range(1, len(rows)) if rows[i] != rows[i - 1]}
    return latex_table(header, body, f"{model} against AdaLoRA Table 1 (ICLR 2023), ours - paper.", breaks)
