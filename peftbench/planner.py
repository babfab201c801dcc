"""``python -m peftbench plan``: what each method trains under each budget, counted on the meta device.

``plan model=deberta_v3_base [method=lora,adalora] [budget=r2,r8]`` prints one row per method × budget (every
registered method without ``method=``) and, below, the papers' figures recorded in the budget's ``reference`` next
to ours. Methods are read through their declared capabilities only (see ``peftbench/budget.py``).
"""

from __future__ import annotations

from typing import Any

from peftbench import methods
from peftbench.budget import Fit, bound_count, fit

LEGEND = """\
knob      = the method's budget knob and its value (-: none, the count is fixed). from = where the value comes
            from: rank (budget.rank, methods whose knob is a rank), knobs (budget.knobs.<method>), cap (the
            largest value under the cap), default (the method config's own value)
trainable = method parameters trained, head excluded (the papers' #Params for LoRA and the adapters)
effective = method parameters expected after training. AdaLoRA: b(T) = r̄ × #matrices spread uniformly,
            r̄ × (in+out+1) per matrix (the real split is recorded per run); training = decided by training
            (SoRA's gates; at most trainable)
binds     = the count a cap binds (the method's budget_binds unless budget.binds is set); bb% = that count
            as a percentage of the backbone (pretrained parameters outside the head)
head      = task head (classifier, DeBERTa's pooler), trained by every method and counted apart
cap       = the budget's cap on the bound count (max_params, or max_percent of the backbone)
paper     = the figure the budget's reference gives for the method, beside our count of the kind the method
            declares (budget_binds). AdaLoRA Table 1 prints 0.32M / 1.27M, a count taken after training that
            depends on where the rank went; no uniform rank gives it (r̄ = 2 / 8 gives 331,920 / 1,327,680).
            Table 9's percentages do not state their denominator; ours is the backbone above.""".splitlines()


def plan_row(run: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The row for one validated run config, and its comparisons with the budget's paper figures."""
    result = fit(run)
    counts = result.counts
    backbone = counts["backbone"]
    planned = counts["planned_effective"]
    effective = f"{planned if planned is not None else counts['adapter']:,}"
    effective = "training" if counts["decided_by_training"] else effective
    row = {"method": run.method_name, "model": run.model.name, "budget": run.budget.name,
           "knob": f"{result.knob}={result.value}" if result.knob else "-", "from": result.source or "-",
           "trainable": counts["adapter"], "effective": effective, "binds": result.binds, "bound": result.bound,
           "percent": 100 * result.bound / backbone if backbone else float("nan"), "head": counts["head"],
           "backbone": backbone, "cap": result.cap, "counts": counts}
    return row, compare(run, result)


def compare(run: Any, result: Fit) -> list[dict[str, Any]]:
    """One comparison per reference of the budget that gives a figure for this method on this model."""
    declared = methods.get(run.method_name).capabilities.budget_binds
    ours = bound_count(result.counts, declared)
    backbone = result.counts["backbone"]
    found = []
    for reference in run.budget.reference:
        if reference.get("model") not in (None, run.model.name):
            continue
        source = str(reference.get("source", "?"))
        paper = (reference.get("params") or {}).get(run.method_name)
        if paper is not None:
            paper = float(paper)
            found.append({"method": run.method_name, "budget": run.budget.name, "source": source, "kind": declared,
                          "paper": f"{paper / 1e6:.2f}M", "ours": f"{ours:,}", "diff": f"{ours - paper:+,.0f}",
                          "relative": f"{100 * (ours - paper) / paper:+.1f}%"})
        percent = (reference.get("percent") or {}).get(run.method_name)
        if percent is not None and backbone:
            percent, mine = float(percent), 100 * ours / backbone
            found.append({"method": run.method_name, "budget": run.budget.name, "source": source, "kind": declared,
                          "paper": f"{percent:g}%", "ours": f"{mine:.3f}%", "diff": f"{mine - percent:+.3f}pt",
                          "relative": f"{100 * (mine - percent) / percent:+.1f}%"})
    return found


def format_plan(rows: list[dict[str, Any]], comparisons: list[dict[str, Any]], unregistered: dict[str, list[str]]
                ) -> str:
    models = sorted({row["model"] for row in rows})
    lines = [f"plan on {', '.join(models)}: backbone " + ", ".join(
        f"{row['backbone']:,}" for row in {r["model"]: r for r in rows}.values()) + " parameters"]
    header = (f"{'method':<8} {'budget':<7} {'knob':<15} {'from':<8} {'trainable':>12} {'effective':>12} "
              f"{'binds':<9} {'bb%':>8} {'head':>9} {'cap':>12}")
    lines += [header, "-" * len(header)]
    for row in rows:
        cap = "-" if row["cap"] is None else f"{row['cap']:,}"
        lines.append(f"{row['method']:<8} {row['budget']:<7} {row['knob']:<15} {row['from']:<8} "
                     f"{row['trainable']:>12,} {row['effective']:>12} {row['binds']:<9} {row['percent']:>7.3f}% "
                     f"{row['head']:>9,} {cap:>12}")
    if comparisons:
        lines += ["", "paper figures (ours: the count of the kind the method declares)"]
        header = (f"{'method':<8} {'budget':<7} {'source':<16} {'kind':<9} {'paper':>8} {'ours':>12} {'diff':>12} "
                  f"{'diff%':>7}")
        lines += [header, "-" * len(header)]
        lines += [f"{c['method']:<8} {c['budget']:<7} {c['source']:<16} {c['kind']:<9} {c['paper']:>8} {c['ours']:>12} "
                  f"{c['diff']:>12} {c['relative']:>7}" for c in comparisons]
    for budget, names in unregistered.items():
        lines.append(f"budget {budget} also sets {', '.join(names)} (not registered; kept as data)")
    return "\n".join([*lines, "", *LEGEND])


def unregistered_names(budget: Any) -> list[str]:
    named = set(budget.knobs)
    for reference in budget.reference:
        named |= set(reference.get("params") or {}) | set(reference.get("percent") or {})
    return sorted(named - set(methods.available()))


def run_plan(overrides: list[str]) -> None:
    """The ``plan`` subcommand: ``method=`` and ``budget=`` take comma-separated lists."""
    from peftbench.budget import BudgetError
    from peftbench.cli import check_options, compose_config, fail
    from peftbench.config import ConfigError, validate

    check_options(overrides)
    axes = {key: value.split(",") for key, _, value in (o.partition("=") for o in overrides)
            if key in ("method", "budget")}
    fixed = [o for o in overrides if o.partition("=")[0] not in axes]
    rows, comparisons, unregistered, skipped = [], [], {}, {}
    for budget in axes.get("budget", [None]):
        for method in axes.get("method", methods.available()):
            choice = [f"method={method}", *([f"budget={budget}"] if budget else [])]
            # A method that needs a quantised backbone (QLoRA) is planned at that precision unless model.quantization
            # is given (the counts are logical sizes, the same at any precision); it cannot be on a random-init
            # model: left out of the plan there, with a line, unless named with method=.
            quantization = methods.get(method).capabilities.quantization
            if quantization is not None and not any(o.startswith("model.quantization=") for o in fixed):
                choice.append(f"model.quantization={quantization}")
            try:
                run = validate(compose_config([*fixed, *choice]))
                row, found = plan_row(run)
            except (ConfigError, BudgetError) as error:
                if "method" not in axes and quantization is not None:
                    skipped[method] = str(error)
                    continue
                fail(str(error))
            rows.append(row)
            comparisons += found
            names = unregistered_names(run.budget)
            if names:
                unregistered[run.budget.name] = names
    print(format_plan(rows, comparisons, unregistered))
    for method, reason in skipped.items():
        print(f"not planned: {method}: {reason}")


__all__ = ["LEGEND", "compare", "format_plan", "plan_row", "run_plan"]
