"""Metrics against hand-worked examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from peftbench.tasks.classification.metrics import compute_metrics


def test_accuracy_and_f1_by_hand() -> None:
    # predictions 1 1 0 0 1 vs labels 1 0 0 1 1: 3/5 correct; TP 2, FP 1, FN 1 -> F1 = 2*2 / (2*2 + 1 + 1) = 2/3
    values = compute_metrics(["accuracy", "f1"], [1, 1, 0, 0, 1], [1, 0, 0, 1, 1])
    assert values["accuracy"] == pytest.approx(0.6)
    assert values["f1"] == pytest.approx(2 / 3)


def test_matthews_by_hand() -> None:
    # TP 2, TN 1, FP 1, FN 1: (2*1 - 1*1) / sqrt(3*3*2*2) = 1/6
    values = compute_metrics(["matthews_correlation"], [1, 1, 0, 0, 1], [1, 0, 0, 1, 1])
    assert values["matthews_correlation"] == pytest.approx(1 / 6)


def test_correlations_by_hand() -> None:
    # y = 2x exactly: Pearson 1; ranks reversed in one pair: Spearman 1 - 6*2/(4*15) = 0.8
    assert compute_metrics(["pearson"], [1, 2, 3, 4], [2, 4, 6, 8])["pearson"] == pytest.approx(1.0)
    spearman = compute_metrics(["spearman", "correlation"], [1, 2, 3, 4], [1, 2, 4, 3])
    assert spearman["spearman"] == pytest.approx(0.8)
    pearson = compute_metrics(["pearson"], [1, 2, 3, 4], [1, 2, 4, 3])["pearson"]
    assert spearman["correlation"] == pytest.approx((pearson + 0.8) / 2)


def test_constant_predictions_give_zero_correlation_not_nan() -> None:
    values = compute_metrics(["pearson", "spearman"], [2.0, 2.0, 2.0], [1.0, 2.0, 3.0])
    assert values == {"pearson": 0.0, "spearman": 0.0}
    assert not any(math.isnan(v) for v in values.values())


def test_unknown_metric_is_named() -> None:
    with pytest.raises(KeyError, match="bleu"):
        compute_metrics(["bleu"], [1], [1])


def test_accuracy_equals_scikit_learns() -> None:
    from sklearn.metrics import accuracy_score

    rng = np.random.default_rng(0)
    labels, predictions = rng.integers(0, 3, 101), rng.integers(0, 3, 101)
    assert compute_metrics(["accuracy"], predictions, labels)["accuracy"] == accuracy_score(labels, predictions)


@pytest.mark.parametrize("seed", range(5))
def test_f1_and_matthews_equal_scikit_learns(seed: int) -> None:
    from sklearn.metrics import f1_score, matthews_corrcoef

    rng = np.random.default_rng(seed)
    size = int(rng.integers(1, 60))
    labels, predictions = rng.integers(0, 2, size), rng.integers(0, 2, size)
    values = compute_metrics(["f1", "matthews_correlation"], predictions, labels)
    assert values["f1"] == pytest.approx(f1_score(labels, predictions, zero_division=0))
    assert values["matthews_correlation"] == pytest.approx(matthews_corrcoef(labels, predictions))
    three = rng.integers(0, 3, size), rng.integers(0, 3, size)  # MCC's multiclass form (Gorodkin's R_K)
    assert compute_metrics(["matthews_correlation"], *three)["matthews_correlation"] == pytest.approx(
        matthews_corrcoef(three[1], three[0]))


@pytest.mark.parametrize(("predictions", "labels"), [([0, 0, 0], [0, 0, 0]), ([1, 1, 1], [1, 1, 1]),
                                                     ([0, 0, 0], [0, 1, 1]), ([1, 1], [0, 0])])
def test_degenerate_f1_and_matthews_equal_scikit_learns(predictions: list[int], labels: list[int]) -> None:
    from sklearn.metrics import f1_score, matthews_corrcoef

    values = compute_metrics(["f1", "matthews_correlation"], predictions, labels)
    assert values["f1"] == f1_score(labels, predictions, zero_division=0)
    assert values["matthews_correlation"] == matthews_corrcoef(labels, predictions)


def test_a_classification_run_does_not_import_scikit_learn() -> None:
    """Its import costs every run ~1 s and ~100 MB at the first evaluation (the metrics module's docstring)."""
    import subprocess
    import sys

    code = ("import sys; from peftbench.tasks.classification.metrics import compute_metrics; "
            "compute_metrics(['accuracy', 'f1', 'matthews_correlation'], [1, 0], [1, 1]); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy', 'pandas')))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
