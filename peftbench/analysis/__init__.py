"""Tables and figures from run records. Reads ``results/**/run.json`` through :mod:`peftbench.results`
only; never imports training code, so it runs on a laptop without the training stack's state.

    python -m peftbench.analysis report results --out reports/latest [--experiment NAME] [--reference]
"""

from peftbench.analysis.cost import cost_table
from peftbench.analysis.curves import plot_sora_curves, stage_frame
from peftbench.analysis.paper_tables import compare_paper_table
from peftbench.analysis.ranks import plot_budget_curve, plot_rank_evolution, plot_rank_heatmap, rank_grid
from peftbench.analysis.report import report
from peftbench.analysis.stat_tables import stat_table
from peftbench.analysis.tables import budget_table, compare_with_paper, load_reference, to_csv, to_latex, to_markdown

__all__ = [
    "budget_table", "compare_paper_table", "compare_with_paper", "cost_table", "load_reference", "plot_budget_curve",
    "plot_rank_evolution", "plot_rank_heatmap", "plot_sora_curves", "rank_grid", "report", "stage_frame",
    "stat_table", "to_csv", "to_latex", "to_markdown",
]
