"""Seed statistics: a Student t confidence interval per cell and a paired test against a reference method.

Why these. A cell is a handful of seeds (3–5 in the papers), so the interval uses the t quantile, not the
normal 1.96 (with n = 3, t(0.975, 2) = 4.30: the honest interval is more than twice as wide). Two methods run
with the same seed share its data order and initialisation of the task head, so gaps are tested *paired*
over the seeds both ran, which removes the seed-to-seed spread both methods share. The paired t-test
assumes roughly normal differences; the exact sign-flip permutation test on the same mean difference does
not, at the price of coarse p-values: with n shared seeds its smallest two-sided p is 2 / 2**n (0.25 for 3
seeds, 0.0625 for 5), so it cannot reach 0.05 before 6 seeds. Below ``MIN_SEEDS`` neither an interval nor a
test is reported, and the reason is said in words instead.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

MIN_SEEDS = 3
CONFIDENCE = 0.95
ALPHA = 0.05
EXACT_UP_TO = 16  # seeds; above this the sign-flip test samples 2**16 sign patterns instead of all 2**n


@dataclass(frozen=True)
class Interval:
    """Mean, sample std (ddof=1) and the t interval of the mean; bounds are NaN below MIN_SEEDS."""

    mean: float
    std: float
    n: int
    low: float
    high: float

    @property
    def note(self) -> str:
        return "" if self.n >= MIN_SEEDS else f"no CI: n={self.n} < {MIN_SEEDS} seeds"


@dataclass(frozen=True)
class PairedTest:
    """Method − reference over the ``n`` shared seeds: mean difference, paired t statistic with its
    two-sided p, and the exact sign-flip permutation p. ``note`` says why a number is missing."""

    n: int
    diff: float
    t: float
    p_t: float
    p_perm: float
    note: str

    def significant(self, alpha: float = ALPHA) -> bool:
        """Marked gaps: paired t-test p < alpha (the permutation p is shown beside it, not used for the mark)."""
        return bool(self.p_t < alpha)


def t_interval(values: list[float] | np.ndarray, confidence: float = CONFIDENCE) -> Interval:
    """mean ± t((1 + c) / 2, n − 1) · s / √n with s the sample std (ddof=1): the interval for the mean over
    seeds when the per-seed spread is estimated from the same few seeds."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    mean = float(values.mean()) if n else float("nan")
    std = float(values.std(ddof=1)) if n > 1 else float("nan")
    if n < MIN_SEEDS:
        return Interval(mean, std, n, float("nan"), float("nan"))
    from scipy import stats  # here: a report of single-seed runs (every run's own report) never needs it

    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * std / np.sqrt(n)
    return Interval(mean, std, n, mean - half, mean + half)


def sign_flip_p(differences: np.ndarray) -> float:
    """Two-sided permutation p of the mean paired difference: under "no difference" each seed's difference
    is equally likely to have either sign, so p = share of sign patterns whose |mean| ≥ the observed |mean|
    (all 2**n patterns up to EXACT_UP_TO seeds, else 2**16 drawn with a fixed generator)."""
    n = len(differences)
    if n <= EXACT_UP_TO:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    else:
        signs = np.random.default_rng(0).choice((1.0, -1.0), size=(2**EXACT_UP_TO, n))
    null = np.abs(signs @ differences) / n
    observed = abs(differences.mean())
    return float(np.mean(null >= observed - 1e-12 * max(1.0, observed)))


def paired_test(method: Mapping[object, float], reference: Mapping[object, float],
                min_seeds: int = MIN_SEEDS) -> PairedTest:
    """Paired t-test and sign-flip test of ``method`` − ``reference`` over the seeds (keys) both have."""
    shared = sorted(set(method) & set(reference), key=str)
    differences = np.array([method[s] - reference[s] for s in shared], dtype=float)
    n = len(shared)
    diff = float(differences.mean()) if n else float("nan")
    nan = float("nan")
    if n < min_seeds:
        return PairedTest(n, diff, nan, nan, nan, f"no test: {n} shared seed{'s' * (n != 1)} < {min_seeds}")
    p_perm = sign_flip_p(differences)
    if np.allclose(differences, differences[0]):
        return PairedTest(n, diff, nan, nan, p_perm, "no t-test: the difference is the same on every seed")
    from scipy import stats

    result = stats.ttest_rel([method[s] for s in shared], [reference[s] for s in shared])
    return PairedTest(n, diff, float(result.statistic), float(result.pvalue), p_perm, "")
