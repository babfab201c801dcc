"""Budgets on declared knobs: which knob value a budget gives a method, and the largest one under a cap.

A budget (``conf/budget/*.yaml``, :class:`peftbench.config.BudgetConfig`) is a paper budget group, a cap, or both:

- *Group*: ``rank`` sets the knob of every method whose ``knob_kind`` is ``"rank"``; ``knobs: {method: value}``
  sets any method's knob by name and wins over ``rank``. Methods without a knob (full, BitFit) keep their count.
- *Cap*: ``max_params`` or ``max_percent`` (of the frozen backbone) on the count ``binds`` names: ``trainable``
  (adapter parameters while training, head excluded), ``effective`` (those expected to remain after training,
  ``Method.planned_effective_parameters``; the trainable count where the method plans none), or null for each
  method's declared ``budget_binds``. A knob the group sets is checked against the cap; an unset one takes the
  largest value whose count fits (exponential, then binary search: counts grow with the knob).

Only the capabilities a method declares in its registration are read here (``knob``, ``knob_kind``,
``budget_binds``: :class:`peftbench.methods.Capabilities`, torch-free); no method is named. Counting goes through
:func:`count_on_meta` alone, which builds the backbone on the meta device (no weights); it is the one place to
re-point when model building moves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from peftbench import methods, tasks
from peftbench.methods import MethodEntry

MAX_KNOB = 1 << 16  # the search stops here if the count never reaches the cap


class BudgetError(ValueError):
    """No setting of the method meets the budget (one line)."""


# --- the group: knob values -----------------------------------------------------------------------------


def knob_setting(method: MethodEntry, budget: Any) -> tuple[int | None, str]:
    """The knob value the budget gives ``method`` and where it comes from (``knobs``, ``rank``), or (None, "")."""
    if method.capabilities.knob is None:
        return None, ""
    if method.name in budget.knobs:
        return int(budget.knobs[method.name]), "knobs"
    if budget.rank is not None and method.capabilities.knob_kind == "rank":
        return int(budget.rank), "rank"
    return None, ""


def with_budget_knob(method: MethodEntry, config: Any, budget: Any) -> Any:
    """``config`` with the knob the budget sets (unchanged when it sets none); called by ``config.validate``."""
    value, source = knob_setting(method, budget)
    if value is None:
        return config
    try:
        return method.with_knob(config, value)
    except ValueError as error:
        where = f"budget.knobs.{method.name}" if source == "knobs" else "budget.rank"
        raise BudgetError(f"{where}={value} ({budget.name}) sets {method.name}.{method.capabilities.knob}: "
                          f"{str(error).splitlines()[0]}") from None


# --- counting -------------------------------------------------------------------------------------------


def count_on_meta(run: Any, method_config: Any | None = None) -> dict[str, Any]:
    """Build the backbone on the meta device, apply the method, count parameters.

    Keys: ``trainable``, ``adapter`` (trainable minus head), ``head``, ``other``, ``total`` (see
    ``methods.count_parameters``); ``backbone``: the pretrained model's parameters outside the head (what a
    percentage budget is a percentage of); ``planned_effective``: adapter parameters expected after training,
    None if the method plans none; ``decided_by_training``: True when None means training decides (the method
    removes parameters after training but cannot say how many beforehand).
    """
    from peftbench.methods.base import Method  # heavy (torch, transformers): only when counting
    from peftbench.models import build_model, model_spec

    family = tasks.family_for(run.task)
    spec = model_spec(run.model, family.name)
    model = build_model(run.model, family.num_labels(), model_class=family.model_class, meta=True)
    method = methods.get(run.method_name).method(method_config or run.method, spec)
    model = method.apply(model)
    counts = methods.count_parameters(model, spec)
    declared = counts["adapter"] - counts["other"]
    planned = method.planned_effective_parameters(model)
    removes = type(method).effective_parameters is not Method.effective_parameters
    return {**counts, "backbone": counts["total"] - counts["head"] - declared, "planned_effective": planned,
            "decided_by_training": planned is None and removes}


def bound_count(counts: dict[str, Any], binds: str) -> int:
    """The count a cap binds: ``trainable`` adapter parameters, or ``effective`` (planned, else trainable)."""
    if binds == "effective" and counts["planned_effective"] is not None:
        return int(counts["planned_effective"])
    return int(counts["adapter"])


def binds_for(method: MethodEntry, budget: Any) -> str:
    return budget.binds or method.capabilities.budget_binds


def cap_of(budget: Any, backbone: int) -> int | None:
    """The cap in parameters: ``max_params``, or ``max_percent`` % of ``backbone`` rounded down; None without."""
    if budget.max_params is not None:
        return int(budget.max_params)
    if budget.max_percent is not None:
        return int(budget.max_percent * backbone / 100)
    return None


def has_cap(budget: Any) -> bool:
    return budget.max_params is not None or budget.max_percent is not None


def describe_cap(budget: Any, cap: int) -> str:
    if budget.max_percent is not None:
        return f"{cap:,} ({budget.max_percent:g}% of the backbone)"
    return f"{cap:,}"


# --- the search -----------------------------------------------------------------------------------------


def largest_fitting(fits: Callable[[int], bool], limit: int = MAX_KNOB, guess: int | None = None) -> int | None:
    """The largest v in 1..limit with ``fits(v)``, for ``fits`` true on a prefix of 1, 2, ... (counts grow with
    the knob; invalid values lie above the valid ones); None if ``fits(1)`` is false.

    Exponential search for a value that does not fit, then binary search: O(log v) calls. A ``guess`` (from the
    count's slope) is tried first: on a count affine in the knob the answer then costs two more calls."""
    if not fits(1):
        return None
    low, high = 1, None  # largest value known to fit, smallest known not to
    if guess is not None and 1 < guess <= limit:
        low, high = (guess, None) if fits(guess) else (1, guess)
    step = 1
    while high is None:
        candidate = low + step
        if candidate > limit:
            high = limit + 1
        elif fits(candidate):
            low, step = candidate, step * 2
        else:
            high = candidate
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


@dataclass
class Fit:
    """What a budget gives one method on one backbone: the config to run and the counts behind it."""

    config: Any
    knob: str | None
    value: int | None
    source: str  # knobs | rank | cap | default ("" for methods without a knob)
    binds: str
    cap: int | None
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def bound(self) -> int:
        return bound_count(self.counts, self.binds)


def fit(run: Any) -> Fit:
    """Apply ``run.budget`` to ``run.method`` (whose knob ``validate`` already set from the group, if any)."""
    method = methods.get(run.method_name)
    knob = method.capabilities.knob
    budget = run.budget
    binds = binds_for(method, budget)
    value, source = knob_setting(method, budget)
    if knob is not None and value is None:
        value, source = getattr(run.method, knob), "default"
    if not has_cap(budget) or source != "default":
        counts = count_on_meta(run, run.method)
        cap = cap_of(budget, counts["backbone"])
        if cap is not None and bound_count(counts, binds) > cap:
            setting = f" at {knob}={value} (from budget.{source})" if source in ("knobs", "rank") else ""
            hint = ("lower the budget's value or leave the knob unset to search under the cap" if setting
                    else "no setting of this method meets it")
            raise BudgetError(f"budget {budget.name}: {run.method_name} has {bound_count(counts, binds):,} {binds} "
                              f"parameters{setting} on {run.model.name}, over the cap of {describe_cap(budget, cap)}; "
                              f"{hint}")
        return Fit(run.method, knob, value, source, binds, cap, counts)
    return _search(run, method, binds)


def _search(run: Any, method: MethodEntry, binds: str) -> Fit:
    """The largest knob value whose bound count fits the cap; a value ``with_knob`` rejects does not fit."""
    budget, knob = run.budget, method.capabilities.knob
    tried: dict[int, tuple[Any, dict[str, Any]] | str] = {}
    caps: list[int] = []

    answers: dict[int, bool] = {}

    def fits(value: int) -> bool:
        if value not in answers:
            try:
                config = method.with_knob(run.method, value)
            except ValueError as error:
                tried[value] = str(error).splitlines()[0]
                answers[value] = False
                return False
            counts = count_on_meta(run, config)
            tried[value] = (config, counts)
            if not caps:
                caps.append(cap_of(budget, counts["backbone"]))
            answers[value] = bound_count(counts, binds) <= caps[0]
        return answers[value]

    guess = None
    if fits(1) and fits(2):  # the slope between 1 and 2 guesses the answer (exact for an affine count)
        first, second = (bound_count(tried[v][1], binds) for v in (1, 2))
        if second > first:
            guess = 1 + (caps[0] - first) // (second - first)
    best = largest_fitting(fits, guess=guess)
    if best is None:
        first = tried[1]
        if isinstance(first, str):
            raise BudgetError(f"budget {budget.name}: {run.method_name}.{knob}=1 is invalid ({first}); "
                              "no value fits the cap")
        raise BudgetError(f"budget {budget.name}: {run.method_name} needs {bound_count(first[1], binds):,} {binds} "
                          f"parameters at the smallest {knob}=1 on {run.model.name}, over the cap of "
                          f"{describe_cap(budget, caps[0])}; raise the cap or adapt fewer matrices")
    config, counts = tried[best]
    return Fit(config, knob, best, "cap", binds, caps[0], counts)


def fit_budget(run: Any) -> Any:
    """The method config that meets the budget (train.py's preflight, before any weights load)."""
    if not has_cap(run.budget):
        return run.method
    return fit(run).config


__all__ = ["MAX_KNOB", "BudgetError", "Fit", "binds_for", "bound_count", "cap_of", "count_on_meta", "fit",
           "fit_budget", "knob_setting", "largest_fitting", "with_budget_knob"]
