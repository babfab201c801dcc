"""Classification metrics (``evaluate.load`` needs the hub). Accuracy, binary F1 and Matthews correlation are a few
lines of numpy each, checked against scikit-learn's ``accuracy_score``, ``f1_score`` and ``matthews_corrcoef`` in
``tests/test_metrics.py``: importing ``sklearn.metrics`` costs a run ~1-1.5 s and ~100 MB of resident memory (it
pulls in pandas), which the quickstart and every sweep job would pay at their first evaluation. Pearson and
Spearman correlations come from scipy, imported only where STS-B asks for them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def _correlations(predictions: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    if np.ptp(predictions) == 0 or np.ptp(labels) == 0:
        return 0.0, 0.0  # a constant vector has no correlation; scipy would return nan with a warning
    from scipy.stats import pearsonr, spearmanr  # here: only STS-B needs it, and it costs a run ~1 s to import

    return float(pearsonr(predictions, labels)[0]), float(spearmanr(predictions, labels)[0])


def _f1(predictions: np.ndarray, labels: np.ndarray) -> float:
    """F1 of the positive class 1, ``2 TP / (2 TP + FP + FN)``; 0 when there are no positives on either side
    (scikit-learn's ``f1_score(average="binary", zero_division=0)``)."""
    predicted, actual = predictions == 1, labels == 1
    true_positive = np.sum(predicted & actual)
    denominator = 2 * true_positive + np.sum(predicted & ~actual) + np.sum(~predicted & actual)
    return float(2 * true_positive / denominator) if denominator else 0.0


def _matthews(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Matthews correlation for K classes (Gorodkin's R_K, which is MCC for K = 2) from the confusion matrix C:
    ``(c s - t.p) / sqrt((s^2 - p.p) (s^2 - t.t))`` with c correct, s samples, t true and p predicted counts
    per class; 0 where a side is constant."""
    classes, codes = np.unique(np.concatenate([labels, predictions]), return_inverse=True)
    true, predicted = codes[:len(labels)], codes[len(labels):]
    confusion = np.zeros((len(classes), len(classes)), dtype=np.float64)
    np.add.at(confusion, (true, predicted), 1)
    true_counts, predicted_counts = confusion.sum(axis=1), confusion.sum(axis=0)
    correct, samples = np.trace(confusion), confusion.sum()
    covariance = correct * samples - true_counts @ predicted_counts
    variances = (samples**2 - predicted_counts @ predicted_counts) * (samples**2 - true_counts @ true_counts)
    return float(covariance / np.sqrt(variances)) if variances else 0.0


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
