"""``report(results_dir, out_dir)``: every table and figure the records support, plus an index README.

Layout under ``out_dir``::

    README.md                                   index: runs found, what was written, what was skipped and why
    tables/budget_table_<model>.{md,tex,csv}    AdaLoRA Table 1 layout (tables.py)
    tables/vs_paper_<model>.{md,tex,csv}        with reference=True: ours vs AdaLoRA Table 1, ours − paper
    tables/vs_paper_<model>_table{2,3}.{md,tex,csv}  with reference=True: ours vs AdaLoRA Table 2 (SQuAD,
                                                DeBERTaV3-base) or Table 3 (XSum, CNN/DM, BART-large), ours − paper
    tables/stats_{best,final}_<model>.{md,tex,csv}  mean, std, t CI, paired tests vs the reference method
    tables/cost_<model>.{md,tex,csv}            AdaLoRA Table 15 shape: time, steps, throughput, memory, ratios
    figures/sora_curves_<model>.{png,pdf}       SoRA Figure 3 (curves.py), when runs recorded stages
    figures/ranks/heatmap_<model>_<task>_<method>_<budget>.{png,pdf}   final ranks, mean over seeds
    figures/ranks/evolution_<run-id>.{png,pdf}  rank over training, lowest seed of each group
    figures/ranks/budget_<run-id>.{png,pdf}     b(t) and realised total rank, lowest seed of each group
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from peftbench.analysis import cost, curves, paper_tables, ranks, stat_tables, tables
from peftbench.analysis.statistics import ALPHA
from peftbench.analysis.style import run_title, save_figure
from peftbench.results import iter_records, load

GROUP = ("model", "task", "method", "budget")


def slug(*parts: Any) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9.-]+", "-", str(part)) for part in parts)


def write_tables(frame: pd.DataFrame, out: Path, *, reference: bool, metric_kind: str,
                 params_kind: str, records: list[dict[str, Any]] = ()) -> tuple[list[Path], list[str]]:
    written, notes = [], []
    completed = frame[frame["status"] == "completed"]
    for model in sorted(completed["model"].unique()):
        table = tables.budget_table(completed[completed["model"] == model], metric_kind=metric_kind,
                                    params_kind=params_kind)
        texts = {"md": tables.to_markdown(table), "tex": tables.to_latex(table), "csv": tables.to_csv(table)}
        written += _write_texts(out / f"budget_table_{slug(model)}", texts)
        if reference and model not in tables.REFERENCE_MODELS.values():
            notes.append(f"no paper comparison for {model}: AdaLoRA Tables 1-3 report "
                         f"{' and '.join(sorted(set(tables.REFERENCE_MODELS.values())))} only")
            continue
        if reference:
            written += write_paper_tables(completed, records, out, model=model, metric_kind=metric_kind)
        if reference and model == tables.REFERENCE_MODELS["adalora_table1"]:
            comparison = tables.compare_with_paper(table)
            if not comparison.empty:
                texts = {"md": tables.comparison_markdown(comparison, model),
                         "tex": tables.comparison_latex(comparison, model),
                         "csv": comparison.to_csv(index=False, lineterminator="\n")}
                written += _write_texts(out / f"vs_paper_{slug(model)}", texts)
    return written, notes


def write_paper_tables(frame: pd.DataFrame, records: list[dict[str, Any]], out: Path, *, model: str,
                       metric_kind: str) -> list[Path]:
    """``vs_paper_<model>_table2`` / ``_table3``: AdaLoRA Tables 2 and 3 where the model ran their tasks."""
    written = []
    for name, spec in paper_tables.PAPER_TABLES.items():
        if spec.model != model:
            continue
        comparison = paper_tables.compare_paper_table(frame, list(records), name, metric_kind=metric_kind)
        if comparison.empty:
            continue
        texts = {"md": paper_tables.comparison_markdown(comparison, name, model, metric_kind),
                 "tex": paper_tables.comparison_latex(comparison, name, model, metric_kind),
                 "csv": paper_tables.comparison_csv(comparison, model)}
        written += _write_texts(out / f"vs_paper_{slug(model)}_{name.removeprefix('adalora_')}", texts)
    return written


def write_statistics(frame: pd.DataFrame, records: list[dict[str, Any]], out: Path, *, reference_method: str,
                     alpha: float) -> tuple[list[Path], list[str]]:
    """Statistics tables for both metric blocks and the cost table, per model; also returns their Markdown
    for the index README."""
    written, sections = [], []
    completed = frame[frame["status"] == "completed"]
    for model in sorted(completed["model"].unique()):
        runs = completed[completed["model"] == model]
        for kind in ("best", "final"):
            table = stat_tables.stat_table(runs, metric_kind=kind, reference=reference_method, alpha=alpha)
            texts = {"md": stat_tables.stat_markdown(table), "tex": stat_tables.stat_latex(table),
                     "csv": stat_tables.stat_csv(table)}
            written += _write_texts(out / f"stats_{kind}_{slug(model)}", texts)
            sections.append(f"### Statistics, {model}, metrics.{kind}\n\n{texts['md']}")
        table = cost.cost_table(records, model, reference=reference_method)
        texts = {"md": cost.cost_markdown(table), "tex": cost.cost_latex(table), "csv": cost.cost_csv(table)}
        written += _write_texts(out / f"cost_{slug(model)}", texts)
        sections.append(f"### Cost, {model}\n\n{texts['md']}")
    return written, sections


def _write_texts(stem: Path, texts: dict[str, str]) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix, text in texts.items():
        path = stem.with_suffix(f".{suffix}")
        path.write_text(text)
        paths.append(path)
    return paths


def write_sora_curves(records: list[dict[str, Any]], out: Path) -> list[Path]:
    stages = curves.stage_frame(records)
    written = []
    for model in sorted(stages["model"].unique()):
        written += save_figure(curves.plot_sora_curves(stages, model), out / f"sora_curves_{slug(model)}")
    return written


def _groups(records: list[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for record in records:
        if record.get("status") == "completed":
            groups.setdefault(tuple(str(record.get(k)) for k in GROUP), []).append(record)
    return {key: sorted(runs, key=_seed_order) for key, runs in sorted(groups.items())}


def _seed_order(record: dict[str, Any]) -> tuple[bool, int, str]:
    return (record.get("seed") is None, record.get("seed") or 0, str(record.get("run_id")))


def write_rank_figures(records: list[dict[str, Any]], out: Path) -> tuple[list[Path], list[str]]:
    """Heatmap per (model, task, method, budget), averaged over seeds; evolution and budget curves for the
    group's lowest seed (seeds differ in their rank paths, so an average path would be nobody's)."""
    written, notes = [], []
    for key, runs in _groups(records).items():
        grids, sources, skipped = [], set(), []
        for run in runs:
            grid, source = ranks.rank_grid(run)
            if grid is not None:
                grids.append(grid)
                sources.add(source)
            elif ranks.has_ranks(run):
                skipped.append(source)  # full fine-tuning and BitFit have no rank: nothing to report
        if skipped:
            notes.append(f"heatmap for {' / '.join(key)}: {len(skipped)} run(s) skipped, e.g. {skipped[0]}")
        if grids:
            note = "; ".join(sorted(s for s in sources if s != "final_ranks"))
            title = run_title(*key, n_seeds=len(grids)) + (" (mean over seeds)" if len(grids) > 1 else "")
            figure = ranks.plot_rank_heatmap(ranks.mean_grid(grids), title, note=note)
            written += save_figure(figure, out / f"heatmap_{slug(*key)}")
        traced = [run for run in runs if (run.get("method_records") or {}).get("rank_history")]
        if traced:
            written += save_figure(ranks.plot_rank_evolution(traced[0]), out / f"evolution_{slug(traced[0]['run_id'])}")
            written += save_figure(ranks.plot_budget_curve(traced[0]), out / f"budget_{slug(traced[0]['run_id'])}")
    return written, notes


def write_index(out: Path, results_dir: Path, records: list[dict[str, Any]], frame: pd.DataFrame,
                written: list[Path], notes: list[str], options: str, sections: list[str] = ()) -> Path:
    """The index README; ``sections`` (statistics and cost tables in Markdown) are printed in full."""
    counts = frame["status"].value_counts().to_dict() if not frame.empty else {}
    lines = ["# peftbench report", "", f"Records: `{results_dir}` ({options}).", "",
             "Runs by status: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none found")
             + ". Tables and figures use completed runs only.", ""]
    failed = [r for r in records if r.get("status") == "failed"]
    if failed:
        lines += ["Failed runs (not in any table):", ""] + [
            f"- `{r.get('run_id')}` ({r.get('experiment')}): {(r.get('failure') or {}).get('type')}: "
            f"{(r.get('failure') or {}).get('message')}" for r in failed] + [""]
    for heading, folder in (("Tables", "tables"), ("Figures", "figures")):
        mine = sorted(p.relative_to(out) for p in written if p.relative_to(out).parts[0] == folder)
        lines += [f"## {heading}", ""] + ([f"- [{p}]({p.as_posix()})" for p in mine] or ["- none"]) + [""]
    if sections:
        lines += ["## Statistics and cost", ""] + [f"{section}\n" for section in sections]
    if notes:
        lines += ["## Skipped", ""] + [f"- {note}" for note in notes] + [""]
    index = out / "README.md"
    index.write_text("\n".join(lines))
    return index


def report(results_dir: str | Path, out_dir: str | Path, *, experiment: str | None = None, reference: bool = False,
           metric_kind: str = "best", params_kind: str = "effective",
           reference_method: str = stat_tables.REFERENCE_METHOD, alpha: float = ALPHA) -> list[Path]:
    """Write tables (md/tex/csv), figures (png/pdf) and ``out_dir/README.md``; return every path written.
    ``metric_kind`` picks the budget table's block; the statistics tables always cover both. Paired tests
    and cost ratios compare every method with ``reference_method``; gaps with p < ``alpha`` are marked."""
    results_dir, out = Path(results_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = [r for r in iter_records(results_dir) if experiment is None or r.get("experiment") == experiment]
    frame = load(results_dir)
    if experiment is not None and not frame.empty:
        frame = frame[frame["experiment"] == experiment].reset_index(drop=True)
    written: list[Path] = []
    notes: list[str] = []
    sections: list[str] = []
    if not frame.empty:
        written, notes = write_tables(frame, out / "tables", reference=reference, metric_kind=metric_kind,
                                      params_kind=params_kind, records=records)
        stats_written, sections = write_statistics(frame, records, out / "tables",
                                                   reference_method=reference_method, alpha=alpha)
        written += stats_written
    written += write_sora_curves(records, out / "figures")
    figures, figure_notes = write_rank_figures(records, out / "figures" / "ranks")
    written += figures
    notes += figure_notes
    options = (f"experiment {experiment or 'all'}, metrics.{metric_kind}, #Params = parameters.{params_kind}, "
               f"reference method {reference_method}, alpha {alpha:g}")
    return written + [write_index(out, results_dir, records, frame, written, notes, options, sections)]

