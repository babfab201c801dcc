"""Statistics tables: per cell (method × budget × task metric, one model) mean, sample std, Student t 95%
interval over seeds, and a paired test against a reference method (LoRA by default) at the same budget.

One line per cell (long format), so any number of tasks fits; the tidy ``cells`` frame is the single
source of the Markdown, LaTeX and CSV renderings. Values are in percent as in the budget tables. The average
column of the budget table has no per-seed values and is not tested here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from peftbench.analysis import statistics as st
from peftbench.analysis import tables
from peftbench.analysis.style import method_label

REFERENCE_METHOD = "lora"
MARK = "†"
KEYS = ["method", "budget", "task", "metric"]


@dataclass
class StatTable:
    model: str
    metric_kind: str
    reference: str
    alpha: float
    columns: list[tables.Column]
    rows: list[tuple[str, str]]
    cells: pd.DataFrame  # one line per (method, budget, task, metric); see cell_line for the columns


def seed_values(scores: pd.DataFrame) -> dict[tuple[str, str, str, str], dict[object, float]]:
    """Cell -> {seed: value}; two completed runs with the same seed (a rerun) are averaged into one."""
    grouped = scores.groupby([*KEYS, "seed"], sort=False, dropna=False)["value"].mean()  # keep seedless runs
    cells: dict[tuple[str, str, str, str], dict[object, float]] = {}
    for (method, budget, task, metric, seed), value in grouped.items():
        cells.setdefault((method, budget, task, metric), {})[seed] = float(value)
    return cells


def cell_line(key: tuple[str, str, str, str], values: dict[object, float],
              reference: dict[object, float] | None, reference_method: str, alpha: float) -> dict:
    """The statistics of one cell. The test pairs the cell with the reference method's cell of the same
    budget, task and metric; the reference itself and a budget the reference never ran say so."""
    interval = st.t_interval(list(values.values()))
    line = dict(zip(KEYS, key), n=interval.n, mean=interval.mean, std=interval.std, ci_low=interval.low,
                ci_high=interval.high, ci_note=interval.note, reference=reference_method)
    if key[0] == reference_method:
        test = st.PairedTest(0, np.nan, np.nan, np.nan, np.nan, "reference method")
    elif reference is None:
        test = st.PairedTest(0, np.nan, np.nan, np.nan, np.nan,
                             f"no test: no {method_label(reference_method)} run at budget {key[1]}")
    else:
        test = st.paired_test(values, reference)
    return line | dict(n_shared=test.n, diff=test.diff, t=test.t, p_t=test.p_t, p_perm=test.p_perm,
                       significant=test.significant(alpha), test_note=test.note)


def stat_table(frame: pd.DataFrame, *, metric_kind: str = "best", reference: str = REFERENCE_METHOD,
               alpha: float = st.ALPHA) -> StatTable:
    """Statistics of every cell of one model's completed runs (``results.load`` rows)."""
    frame = frame[frame["status"] == "completed"]
    models = frame["model"].unique()
    if len(models) != 1:
        raise ValueError(f"a statistics table covers one model, got {sorted(models)}; filter the frame first")
    frame = frame.assign(budget=frame["budget"].astype(str))
    columns, rows = tables.table_columns(frame), tables.ordered_rows(frame)
    values = seed_values(tables.seed_scores(frame, columns, metric_kind))
    lines = [cell_line(key, seeds, values.get((reference, *key[1:])), reference, alpha)
             for key, seeds in values.items()]
    order = {row: i for i, row in enumerate(rows)}
    positions = [(c.task, c.metric) for c in columns]
    cells = pd.DataFrame(lines, columns=[*KEYS, "n", "mean", "std", "ci_low", "ci_high", "ci_note", "reference",
                                         "n_shared", "diff", "t", "p_t", "p_perm", "significant", "test_note"])
    if not cells.empty:
        cells = cells.assign(_r=[order[(m, b)] for m, b in zip(cells["method"], cells["budget"])],
                             _c=[positions.index((t, m)) for t, m in zip(cells["task"], cells["metric"])])
        cells = cells.sort_values(["_r", "_c"]).drop(columns=["_r", "_c"]).reset_index(drop=True)
    return StatTable(models[0], metric_kind, reference, alpha, columns, rows, cells)


def _number(value: float, digits: int = 2, sign: bool = False) -> str:
    return tables.MISSING if np.isnan(value) else (f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}")


def _p(value: float) -> str:
    return tables.MISSING if np.isnan(value) else (f"{value:.3f}" if value >= 0.001 else "<0.001")


def test_cells(cell: pd.Series) -> list[str]:
    """Δ, shared seeds, paired t-test, sign-flip p; where a test cannot run its column says why."""
    if cell.test_note == "reference method":
        return ["reference", tables.MISSING, tables.MISSING, tables.MISSING]
    mark = MARK if cell.significant else ""
    diff = _number(cell.diff, sign=True) + mark
    shared = str(cell.n_shared)
    t_text = cell.test_note or f"t={cell.t:.2f}, p={_p(cell.p_t)}{mark}"
    perm = "no test" if np.isnan(cell.p_perm) else _p(cell.p_perm)
    return [diff, shared, t_text, perm]


def line_cells(cell: pd.Series, label: str) -> list[str]:
    """Display strings of one line; a missing interval or test shows its reason, never a blank."""
    spread = "" if np.isnan(cell.std) else f" ± {cell.std:.2f}"
    ci = cell.ci_note or f"[{cell.ci_low:.2f}, {cell.ci_high:.2f}]"
    return [*tables._row_label(cell.method, cell.budget), label, str(cell.n), f"{cell.mean:.2f}{spread}", ci,
            *test_cells(cell)]


def stat_rows(table: StatTable) -> tuple[list[str], list[list[str]]]:
    labels = {(c.task, c.metric): c.label for c in table.columns}
    reference = method_label(table.reference)
    value = "Mean ± std, best ckpt (optimistic)" if table.metric_kind == "best" else "Mean ± std, final"
    header = ["Method", "Budget", "Task", "n", value, f"{st.CONFIDENCE:.0%} CI (t)", f"Δ vs {reference}",
              "Shared seeds", "Paired t-test", "Sign-flip p"]
    body = [line_cells(cell, labels[(cell.task, cell.metric)]) for cell in table.cells.itertuples(index=False)]
    return header, body


def stat_caption(table: StatTable) -> str:
    reference = method_label(table.reference)
    return (f"{table.model}: {tables.metric_source(table.metric_kind)}, in percent (fractions ×100), over seeds. "
            f"Mean ± sample std (ddof=1); CI: Student t {st.CONFIDENCE:.0%} interval of the mean "
            f"(needs n ≥ {st.MIN_SEEDS}). "
            f"Δ: mean of (method − {reference}) over the seeds both ran at the same budget; paired t-test "
            f"(two-sided) and exact sign-flip permutation p on the same differences (its smallest possible p is "
            f"2/2^n: 0.25 with 3 seeds). {MARK}: paired t-test p < {table.alpha:g}. Tests need "
            f"≥ {st.MIN_SEEDS} shared seeds; no correction for multiple comparisons.")


def stat_markdown(table: StatTable) -> str:
    header, body = stat_rows(table)
    return f"{stat_caption(table)}\n\n{tables.markdown_table(header, body)}"


def stat_latex(table: StatTable) -> str:
    header, body = stat_rows(table)
    rows = list(zip(table.cells["method"], table.cells["budget"]))
    breaks = {i for i in range(1, len(rows)) if rows[i] != rows[i - 1]}
    text = tables.latex_table(header, body, stat_caption(table), breaks)
    for plain, latex in ((MARK, "$^\\dagger$"), ("Δ", "$\\Delta$"), ("≥", "$\\geq$"), ("2/2^n", "$2/2^n$"),
                          ("<", "$<$")):
        text = text.replace(plain, latex)
    return text


def stat_csv(table: StatTable) -> str:
    """Tidy, full precision; NaN where a number does not exist, with ci_note/test_note saying why."""
    cells = table.cells.assign(model=table.model, metric_kind=table.metric_kind, alpha=table.alpha)
    order = ["model", "metric_kind", *table.cells.columns, "alpha"]
    return cells[order].to_csv(index=False, lineterminator="\n")
