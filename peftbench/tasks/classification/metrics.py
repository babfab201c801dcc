"""Classification metrics with scikit-learn and scipy (``evaluate.load`` needs the hub). Both are imported where a
metric needs them: together they cost a run 1-2 s of start-up, and the accuracy-only tasks use neither (accuracy is
the fraction of equal entries, which is what ``sklearn.metrics.accuracy_score`` computes for label vectors)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def _correlations(predictions: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    if np.ptp(predictions) == 0 or np.ptp(labels) == 0:
        return 0.0, 0.0  # a constant vector has no correlation; scipy would return nan with a warning
    from scipy.stats import pearsonr, spearmanr  # here: only STS-B needs it, and it costs a run ~1 s to import

    return float(pearsonr(predictions, labels)[0]), float(spearmanr(predictions, labels)[0])


def _f1(predictions: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(labels, predictions, pos_label=1, average="binary", zero_division=0))


def _matthews(predictions: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import matthews_corrcoef

    return float(matthews_corrcoef(labels, predictions))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": lambda p, y: float(np.mean(p == y)) if len(y) else 0.0,
    "f1": _f1,
    "matthews_correlation": _matthews,
    "pearson": lambda p, y: _correlations(p, y)[0],
    "spearman": lambda p, y: _correlations(p, y)[1],
    # AdaLoRA reports STS-B as the average of Pearson and Spearman correlation.
    "correlation": lambda p, y: float(np.mean(_correlations(p, y))),
}


def compute_metrics(names: Sequence[str], predictions: Sequence, labels: Sequence) -> dict[str, float]:
    """Metrics named in ``names`` for class ids (classification) or scores (regression)."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise KeyError(f"unknown metric(s) {unknown}; known: {sorted(METRICS)}")
    return {name: METRICS[name](predictions, labels) for name in names}
