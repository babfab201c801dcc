"""Budget planner: trainable parameters of a method on a backbone, counted on the meta device (no weights).

``python -m peftbench plan model=deberta_v3_base method=lora budget=r8`` prints what a run would train.
"""

from __future__ import annotations

from typing import Any

from peftbench import methods, tasks
from peftbench.models import build_model, model_spec


class BudgetError(ValueError):
    """No setting of the method meets the budget."""


def count_on_meta(run: Any, method_config: Any | None = None) -> dict[str, Any]:
    """Build the backbone on the meta device, apply the method, count parameters (adapter and head apart) and
    the adapter parameters expected to remain after training (``planned_effective``, None if training decides)."""
    family = tasks.family_for(run.task)
    spec = model_spec(run.model, family.name)
    model = build_model(run.model, family.num_labels(), model_class=family.model_class, meta=True)
    method = methods.get(run.method_name).method(method_config or run.method, spec)
    model = method.apply(model)
    return {**methods.count_parameters(model, spec), "planned_effective": method.planned_effective_parameters(model)}


def fit_budget(run: Any) -> Any:
    """The method config that meets ``budget.max_trainable_params`` (adapter parameters, head excluded).

    With a budget rank the count is checked; without one, rank-bearing methods take the largest rank under the cap.
    """
    cap = run.budget.max_trainable_params
    if cap is None:
        return run.method
    config = run.method
    if run.budget.rank is None and hasattr(config, "with_rank"):
        per_rank = count_on_meta(run, config.with_rank(1))["adapter"]
        if per_rank > cap:
            raise BudgetError(f"budget {run.budget.name}: {run.method_name} needs {per_rank:,} adapter parameters "
                              f"at rank 1 on {run.model.name}, over the cap of {cap:,}; raise "
                              "budget.max_trainable_params or adapt fewer matrices (method.target_types)")
        rank = max(1, cap // per_rank)
        while rank > 1 and count_on_meta(run, config.with_rank(rank))["adapter"] > cap:
            rank -= 1
        config = config.with_rank(rank)
    adapter = count_on_meta(run, config)["adapter"]
    if adapter > cap:
        raise BudgetError(f"budget {run.budget.name}: {run.method_name} trains {adapter:,} adapter parameters on "
                          f"{run.model.name}, over the cap of {cap:,}; no setting of this method meets it")
    return config


def plan_rows(run: Any) -> list[dict[str, Any]]:
    """One row for the configured method: trainable adapter and head parameters, and the backbone size."""
    config = fit_budget(run)
    counts = count_on_meta(run, config)
    return [{"method": run.method_name, "model": run.model.name, "budget": run.budget.name,
             "setting": _describe(config), **counts}]


def _describe(config: Any) -> str:
    fields = getattr(config, "__dataclass_fields__", {})
    keys = [k for k in ("r", "init_rank", "target_rank") if k in fields]
    if hasattr(config, "initial_rank"):
        return f"rank {config.initial_rank} -> {config.target_rank}/matrix"
    return ", ".join(f"{k}={getattr(config, k)}" for k in keys) or "-"


def format_plan(rows: list[dict[str, Any]]) -> str:
    header = (f"{'method':<8} {'model':<16} {'budget':<7} {'setting':<24} {'adapter':>11} {'effective':>11} "
              f"{'head':>9} {'backbone':>13}")
    lines = [header, "-" * len(header)]
    for row in rows:
        effective = row["planned_effective"]
        effective = "training" if effective is None and row["method"] == "sora" else f"{effective or row['adapter']:,}"
        lines.append(f"{row['method']:<8} {row['model']:<16} {row['budget']:<7} {row['setting']:<24} "
                     f"{row['adapter']:>11,} {effective:>11} {row['head']:>9,} {row['total'] - row['trainable']:>13,}")
    lines += [
        "adapter   = trainable method parameters during training (the papers' #Params for LoRA)",
        "effective = adapter parameters left after training: AdaLoRA at b(T) spread uniformly, r̄·(in+out+1) per "
        "matrix (the paper's #Params; the real split is recorded per run); SoRA: set by the gates during training",
        "head      = task head (classifier, DeBERTa's pooler), trained and counted apart; backbone = frozen",
    ]
    return "\n".join(lines)


__all__ = ["BudgetError", "count_on_meta", "fit_budget", "format_plan", "plan_rows"]
