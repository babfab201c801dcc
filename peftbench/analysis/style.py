"""One look for every figure: a fixed colour per method, display names, and PNG+PDF saving.

Colours come from the Okabe-Ito palette (distinguishable with the common colour-vision deficiencies) and are
fixed per method name, so LoRA is the same blue in a table plot, a curve and a heatmap title bar.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import matplotlib

# Reports run headless (CLI, CI), so Agg, unless a backend was chosen on purpose: Jupyter kernels set
# MPLBACKEND to their inline backend, which the notebooks need to show figures.
if not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
from matplotlib.figure import Figure  # noqa: E402

from peftbench.tasks import catalog  # noqa: E402

METHOD_COLORS = {
    "lora": "#0072B2",  # blue
    "adalora": "#D55E00",  # vermillion
    "sora": "#009E73",  # bluish green
    "full": "#000000",
    "bitfit": "#E69F00",  # orange
    "houlsby": "#CC79A7",  # reddish purple (AdaLoRA's HAdapter)
    "pfeiffer": "#56B4E9",  # sky blue (AdaLoRA's PAdapter)
    "qlora": "#332288",  # indigo, LoRA's family
}
# Methods without a fixed colour get one of these, picked by a stable hash of the name (not Python's
# randomised hash()) so reruns and other figures agree.
_SPARE_COLORS = ("#F0E442", "#882255", "#44AA99", "#999933", "#AA4499", "#661100")

METHOD_LABELS = {
    "lora": "LoRA", "adalora": "AdaLoRA", "sora": "SoRA", "full": "Full FT", "bitfit": "BitFit",
    "houlsby": "HAdapter", "pfeiffer": "PAdapter", "parallel": "Parallel", "mam": "MAM", "prefix": "Prefix",
    "ptuning_v2": "P-tuning v2", "prompt": "Prompt", "ptuning": "P-tuning", "qlora": "QLoRA",
}
MATRIX_LABELS = {
    "query": "$W_q$", "key": "$W_k$", "value": "$W_v$", "attention_output": "$W_o$",
    "ffn_in": "$W_{f_1}$", "ffn_out": "$W_{f_2}$",
}
RANK_CMAP = "viridis"  # perceptually uniform: equal colour steps read as equal rank steps


def method_color(method: str) -> str:
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    digest = int(hashlib.sha1(method.encode()).hexdigest(), 16)
    return _SPARE_COLORS[digest % len(_SPARE_COLORS)]


def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def task_label(task: str) -> str:
    """The task's display name from the catalogue (conf/task/<task>.yaml ``label``)."""
    return catalog.label(task)


def run_title(model: str, task: str, method: str, budget: str, n_seeds: int | None = None) -> str:
    seeds = "" if n_seeds is None else f", {n_seeds} seed{'s' if n_seeds != 1 else ''}"
    return f"{model} · {task_label(task)} · {method_label(method)} · budget {budget}{seeds}"


def save_figure(fig: Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` and close the figure. Timestamps are dropped from the metadata so
    the same records give byte-identical files."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, pdf = stem.with_suffix(".png"), stem.with_suffix(".pdf")
    fig.savefig(png, dpi=150, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(pdf, bbox_inches="tight", metadata={"CreationDate": None, "ModDate": None, "Producer": None})
    plt.close(fig)
    return [png, pdf]
