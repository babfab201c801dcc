"""Where the rank went: layer × matrix-type heatmaps of final ranks, rank evolution and the budget b(t).

Inputs are ``method_records`` of AdaLoRA/SoRA runs (``matrices``, ``final_ranks``, ``rank_history``,
``budget_schedule``). A plain LoRA run has one rank everywhere: if it records ``matrices`` but no
``final_ranks`` we draw that uniform rank (from ``config.method.r``, else ``config.budget.rank``) so every
method gets the same picture; without ``matrices`` we cannot know the layer layout and say so instead of
guessing.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from peftbench.analysis.style import MATRIX_LABELS, RANK_CMAP, method_color, method_label, run_title

MATRIX_TYPES = ("query", "key", "value", "attention_output", "ffn_in", "ffn_out")  # AdaLoRA's six matrices


def has_ranks(record: dict[str, Any]) -> bool:
    """A rank-based run: it recorded final ranks, or (older records) its method config has a rank."""
    if (record.get("method_records") or {}).get("final_ranks") is not None:
        return True
    method = (record.get("config") or {}).get("method") or {}
    return any(key in method for key in ("r", "target_rank"))


def rank_grid(record: dict[str, Any]) -> tuple[pd.DataFrame | None, str]:
    """Final ranks as layers (rows) × matrix types (columns), and a note on where they came from.

    Returns ``(None, reason)`` when the record cannot give a layer-wise picture. Several modules of one type
    in a layer (BART decoder self- and cross-attention) are averaged."""
    records = record.get("method_records") or {}
    matrices = records.get("matrices")
    if not matrices:
        return None, (f"{record.get('run_id')}: the record has no method_records.matrices, so its layer layout "
                      "is unknown (records written before every method recorded its matrices)")
    ranks = records.get("final_ranks")
    if ranks is None:
        return None, f"{record.get('run_id')}: matrices recorded but no final_ranks (a method without ranks)"
    return _grid(matrices, ranks), "final_ranks"


def _grid(matrices: dict[str, dict[str, Any]], ranks: dict[str, float]) -> pd.DataFrame:
    # Modules the method could not place (layer -1 or type None) have no cell in a layer × type grid.
    rows = [(info["layer"], info["type"], ranks[name]) for name, info in matrices.items()
            if name in ranks and info.get("type") is not None and info.get("layer", -1) >= 0]
    frame = pd.DataFrame(rows, columns=["layer", "type", "rank"])
    grid = frame.pivot_table(index="layer", columns="type", values="rank", aggfunc="mean")
    types = [t for t in MATRIX_TYPES if t in grid.columns] + sorted(set(grid.columns) - set(MATRIX_TYPES))
    return grid.reindex(columns=list(dict.fromkeys([*MATRIX_TYPES, *types])))  # unadapted types stay NaN


def mean_grid(grids: list[pd.DataFrame]) -> pd.DataFrame:
    """Average over seeds, cell by cell (a NaN cell in every seed stays NaN)."""
    return pd.concat(grids).groupby(level=0).mean().reindex(columns=grids[0].columns)


def plot_rank_heatmap(grid: pd.DataFrame, title: str, *, note: str = "") -> Figure:
    values = grid.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(6.4, 0.38 * len(grid) + 1.8))
    cmap = plt.get_cmap(RANK_CMAP).with_extremes(bad="0.85")  # grey = matrix type not adapted
    vmax = max(1.0, float(np.nanmax(values)) if np.isfinite(values).any() else 1.0)
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0, vmax=vmax, aspect="auto")
    integral = np.allclose(values[np.isfinite(values)], np.round(values[np.isfinite(values)]))
    for (row, column), value in np.ndenumerate(values):
        if np.isfinite(value):
            text = f"{value:.0f}" if integral else f"{value:.1f}"
            ax.text(column, row, text, ha="center", va="center", fontsize=7,
                    color="white" if value < 0.6 * vmax else "black")
    ax.set_xticks(range(grid.shape[1]), [MATRIX_LABELS.get(t, t) for t in grid.columns])
    ax.set_yticks(range(len(grid)), [str(layer) for layer in grid.index])
    ax.set_xlabel("weight matrix" + (" (grey: not adapted)" if np.isnan(values).any() else ""))
    ax.set_ylabel("layer index")
    ax.set_title(title + (f"\n{note}" if note else ""), fontsize=9)
    bar = fig.colorbar(image, ax=ax, ticks=MaxNLocator(integer=True))
    bar.set_label("final rank (AdaLoRA: kept singular values; SoRA: open gates)")
    fig.tight_layout()
    return fig


def rank_history_frame(record: dict[str, Any]) -> pd.DataFrame:
    """Long frame step, module, layer, type, rank from ``rank_history``."""
    records = record.get("method_records") or {}
    matrices = records.get("matrices") or {}
    rows = [(entry["step"], name, matrices.get(name, {}).get("layer"), matrices.get(name, {}).get("type"), rank)
            for entry in records.get("rank_history") or [] for name, rank in entry["ranks"].items()]
    return pd.DataFrame(rows, columns=["step", "module", "layer", "type", "rank"])


def plot_rank_evolution(record: dict[str, Any]) -> Figure:
    """Small multiples, one per matrix type: layers × recorded steps, colour = rank at that step."""
    history = rank_history_frame(record)
    types = [t for t in MATRIX_TYPES if t in set(history["type"])]
    vmax = max(1.0, float(history["rank"].max()))
    fig, axes = plt.subplots(1, len(types), figsize=(2.6 * len(types) + 1.2, 3.6), sharey=True, squeeze=False,
                             layout="constrained")
    for ax, matrix_type in zip(axes[0], types):
        grid = history[history["type"] == matrix_type].pivot_table(index="layer", columns="step", values="rank",
                                                                   aggfunc="mean")
        # pcolormesh with "nearest" shading handles unevenly spaced evaluation steps.
        mesh = ax.pcolormesh(grid.columns, grid.index, grid.to_numpy(float), cmap=RANK_CMAP, vmin=0, vmax=vmax,
                             shading="nearest")
        ax.set_title(MATRIX_LABELS.get(matrix_type, matrix_type))
        ax.set_xlabel("training step")
    layers = sorted(history["layer"].dropna().unique())
    axes[0][0].set_yticks(layers, [str(int(layer)) for layer in layers])
    axes[0][0].invert_yaxis()  # once: the axes share y. Layer 0 on top, as in the final-rank heatmap
    axes[0][0].set_ylabel("layer index")
    bar = fig.colorbar(mesh, ax=axes[0].tolist(), ticks=MaxNLocator(integer=True))
    bar.set_label("rank at recorded step")
    fig.suptitle(_title(record) + " · rank over training", fontsize=10)
    return fig


def cubic_budget(step: np.ndarray, schedule: dict[str, int]) -> np.ndarray:
    """AdaLoRA's cubic schedule: b(0) until t_i, a cubic decrease to b(T), then b(T) for the last t_f steps;
    floored like the allocator (peftbench.methods.adalora.allocator.BudgetSchedule, not imported here)."""
    b0, bT, t_i, t_f, total = (schedule[k] for k in ("b0", "bT", "t_i", "t_f", "total_steps"))
    progress = np.clip((step - t_i) / max(1, total - t_i - t_f), 0.0, 1.0)
    return np.floor(bT + (b0 - bT) * (1 - progress) ** 3)


def plot_budget_curve(record: dict[str, Any]) -> Figure:
    """The scheduled budget b(t), the budgets the run recorded, and the realised total rank (sum over
    matrices). SoRA has no schedule, so only its realised total rank is drawn."""
    records = record.get("method_records") or {}
    history = records.get("rank_history") or []
    colour = method_color(record.get("method", ""))
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    schedule = records.get("budget_schedule")
    if schedule:
        steps = np.arange(0, schedule["total_steps"] + 1)
        ax.plot(steps, cubic_budget(steps, schedule), color="0.4", linestyle="--", label="scheduled b(t) (cubic)")
        for label, at in (("t_i", schedule["t_i"]), ("T − t_f", schedule["total_steps"] - schedule["t_f"])):
            ax.axvline(at, color="0.75", linewidth=0.8)
            ax.text(at, 0.98, f" {label}", transform=ax.get_xaxis_transform(), fontsize=7, va="top")
    recorded = [(entry["step"], entry["budget"]) for entry in history if entry.get("budget") is not None]
    if recorded:
        ax.plot(*zip(*recorded), linestyle="none", marker="o", markerfacecolor="none", color=colour,
                label="recorded budget")
    if history:
        ax.plot([e["step"] for e in history], [sum(e["ranks"].values()) for e in history], color=colour,
                marker=".", label=f"realised total rank ({method_label(record.get('method', ''))})")
    ax.set_xlabel("training step")
    ax.set_ylabel("total rank (sum over adapted matrices)")
    ax.set_title(_title(record) + " · total rank over training", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _title(record: dict[str, Any]) -> str:
    return run_title(record.get("model", "?"), record.get("task", "?"), record.get("method", "?"),
                     str(record.get("budget")), None) + f" · seed {record.get('seed')}"
