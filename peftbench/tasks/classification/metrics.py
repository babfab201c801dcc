"""Classification metrics with scikit-learn and scipy (``evaluate.load`` needs the hub)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef


def _correlations(predictions: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    if np.ptp(predictions) == 0 or np.ptp(labels) == 0:
        return 0.0, 0.0  # a constant vector has no correlation; scipy would return nan with a warning
    return float(pearsonr(predictions, labels)[0]), float(spearmanr(predictions, labels)[0])


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": lambda p, y: float(accuracy_score(y, p)),
    "f1": lambda p, y: float(f1_score(y, p, pos_label=1, average="binary", zero_division=0)),
    "matthews_correlation": lambda p, y: float(matthews_corrcoef(y, p)),
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
