"""Threshold schedules for SoRA's sparsifying scheduler (Algorithm 1): pure functions of (start, end, num).

Each returns ``num`` thresholds from ``start`` to ``end`` inclusive, as the authors' SparseAdamW builds
its list (src/sparse_optimizer.py). The first value is the one the dense stage trains with, so the released
RTE run (xi 0 -> 7e-4, ``lambda_num`` 7) has one dense stage at xi = 0 followed by 6 sparsifying stages.
"""

from __future__ import annotations

import math
from collections.abc import Callable


def _linspace(start: float, end: float, num: int) -> list[float]:
    if num < 1:
        raise ValueError(f"a threshold schedule needs num >= 1 values, got {num}")
    if num == 1:
        return [float(start)]
    return [start + (end - start) * i / (num - 1) for i in range(num)]


def linear(start: float, end: float, num: int) -> list[float]:
    """Evenly spaced thresholds (the released scheduled run)."""
    return _linspace(start, end, num)


def log_linear(start: float, end: float, num: int) -> list[float]:
    """log of evenly spaced exp(xi): for the tiny xi used in practice this is almost linear."""
    return [math.log(v) for v in _linspace(math.exp(start), math.exp(end), num)]


def exp_linear(start: float, end: float, num: int) -> list[float]:
    """Geometric spacing (exp of evenly spaced log xi); needs start > 0."""
    if start <= 0 or end <= 0:
        raise ValueError(f"exp_linear needs start and end > 0, got {start}, {end}; use linear to start from 0")
    return [math.exp(v) for v in _linspace(math.log(start), math.log(end), num)]


SCHEDULES: dict[str, Callable[[float, float, int], list[float]]] = {
    "linear": linear,
    "log_linear": log_linear,
    "exp_linear": exp_linear,
}


def threshold_schedule(kind: str, start: float, end: float, num: int) -> list[float]:
    if kind not in SCHEDULES:
        raise ValueError(f"unknown threshold schedule {kind!r}; choose one of {', '.join(SCHEDULES)}")
    return SCHEDULES[kind](start, end, num)
