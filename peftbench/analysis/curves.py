"""SoRA Figure 3: memorization and generalization against the number of non-zero trainable parameters.

Each stage of SoRA's sparsifying scheduler (threshold ξ raised step by step) records the train-subset and
validation metrics relative to the dense stage 0 (both 100 there, Algorithm 1). Over several seeds we average
per stage, because every seed walks the same ξ schedule.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from peftbench.analysis.style import method_color, method_label, task_label

STAGE_COLUMNS = ["model", "task", "method", "budget", "seed", "run_id", "stage", "threshold",
                 "nonzero_parameters", "memorization", "generalization", "stage_lr"]
# How the stages' learning rate behaved: recorded by the recipe since it became an option (restart: Algorithm 1,
# every stage trains; continue: the released code, lr 0 after the dense stage). Older records ran `continue`.
OLD_STAGE_LR = "continue"
CURVES = (("memorization", "-", "o"), ("generalization", "--", "s"))  # line style, marker


def record_stages(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Stages from ``method_records.stages`` (the schema) or ``sparsity.stages`` (where the
    ``peftbench.recipes.sora_sparsity`` recipe writes them)."""
    stages = (record.get("method_records") or {}).get("stages")
    return stages or (record.get("sparsity") or {}).get("stages") or []


def stage_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (completed run, stage). A ratio the recipe could not define (dense-stage metric 0, e.g.
    MCC of a constant predictor) is recorded as null and becomes NaN: a gap, not a point."""
    rows = []
    for record in records:
        if record.get("status") != "completed":
            continue
        run = {k: record.get(k) for k in STAGE_COLUMNS[:6]}
        stage_lr = (record.get("sparsity") or {}).get("stage_lr", OLD_STAGE_LR)
        rows += [{**run, **{k: stage.get(k) for k in STAGE_COLUMNS[6:-1]}, "stage_lr": stage_lr}
                 for stage in record_stages(record)]
    frame = pd.DataFrame(rows, columns=STAGE_COLUMNS)
    numeric = ["threshold", "nonzero_parameters", "memorization", "generalization"]
    return frame.astype({column: float for column in numeric})


def mean_stages(stages: pd.DataFrame) -> pd.DataFrame:
    """Seed means per (model, task, method, budget, stage), with the seed count n."""
    keys = ["model", "task", "method", "budget", "stage"]
    values = ["threshold", "nonzero_parameters", "memorization", "generalization"]
    grouped = stages.groupby(keys, sort=True)
    stage_lr = grouped["stage_lr"].agg(lambda v: "/".join(sorted(set(map(str, v)))))
    return grouped[values].mean().join(grouped["seed"].nunique().rename("n")).join(stage_lr).reset_index()


def xi_label(threshold: float) -> str:
    if threshold == 0:
        return "ξ=0"
    exponent = math.floor(math.log10(abs(threshold)))
    return f"ξ={threshold / 10 ** exponent:.3g}e{exponent}"


def plot_sora_curves(stages: pd.DataFrame, model: str) -> Figure:
    """One panel per task (as in SoRA Figure 3); both curves in the method's colour, told apart by line
    style and marker so the method colours stay consistent across figures."""
    means = mean_stages(stages[stages["model"] == model])
    panels = list(means.groupby(["task", "method", "budget"], sort=True))
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.8 * rows), squeeze=False)
    for ax, ((task, method, budget), curve) in zip(axes.flat, panels):
        curve = curve.sort_values("stage")
        for name, line, marker in CURVES:
            ax.plot(curve["nonzero_parameters"], curve[name], linestyle=line, marker=marker,
                    color=method_color(method), label=f"{name} (%)")
        labelled = curve.dropna(subset=["memorization"])
        for x, y, threshold in zip(labelled["nonzero_parameters"], labelled["memorization"], labelled["threshold"]):
            ax.annotate(xi_label(threshold), (x, y), textcoords="offset points", xytext=(0, 6), ha="center",
                        fontsize=7, rotation=30)
        ax.axhline(100, color="0.6", linewidth=0.8, zorder=0)
        ax.set_xscale("log")
        ax.set_xlabel("non-zero trainable parameters (count, log scale)")
        ax.set_ylabel("% of dense-stage value")
        stage_lr = "/".join(sorted(set(curve["stage_lr"])))
        ax.set_title(f"{task_label(task)} · {method_label(method)} · budget {budget} · n={int(curve['n'].max())}\n"
                     f"stage lr: {stage_lr}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    # One legend for all panels, below them, so it never hides the low-ξ points.
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=9)
    fig.suptitle(f"{model}: memorization and generalization along the sparsifying scheduler (cf. SoRA Fig. 3); "
                 "stage lr restart = every stage trains (Algorithm 1), continue = released code (lr 0 after the "
                 "dense stage)", fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig
