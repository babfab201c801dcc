"""Budgets on declared knobs: group values, the cap search (DeBERTaV3-base on the meta device), the schema."""

from __future__ import annotations

import dataclasses
import time

import pytest
from support import CONF, compose

from peftbench import methods
from peftbench.budget import BudgetError, fit, fit_budget, largest_fitting
from peftbench.config import ConfigError, validate
from peftbench.planner import compare, plan_row

DEBERTA = ["model=deberta_v3_base"]
PER_RANK = 165_960  # AdaLoRA on DeBERTaV3-base: Σ (in + out + 1) over the 72 matrices


def run_of(*overrides: str):
    return validate(compose([*DEBERTA, *overrides]))


# --- the search ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("largest", [1, 2, 3, 7, 8, 9, 100, 1000])
def test_search_finds_the_largest_fitting_value_in_log_calls(largest: int) -> None:
    calls = []

    def fits(value: int) -> bool:
        calls.append(value)
        return value <= largest

    assert largest_fitting(fits) == largest
    assert len(calls) <= 2 * largest.bit_length() + 2


@pytest.mark.parametrize("guess", [None, 1, 2, 5, 6, 7, 50, 10**9])
def test_search_with_a_guess_is_still_exact(guess) -> None:
    calls = []

    def fits(value: int) -> bool:
        calls.append(value)
        return value <= 6

    assert largest_fitting(fits, guess=guess) == 6
    if guess == 6:
        assert calls == [1, 6, 7]  # a right guess costs two calls after the first


def test_search_reports_nothing_when_the_smallest_value_does_not_fit() -> None:
    assert largest_fitting(lambda value: False) is None
    assert largest_fitting(lambda value: True, limit=50) == 50


@pytest.mark.parametrize(
    ("cap", "target_rank", "trainable"),
    [("2000000", 8, 12 * PER_RANK), ("1000000", 4, 6 * PER_RANK)],  # init ranks 12 and 6 (1.5 r̄)
)
def test_trainable_cap_takes_the_largest_adalora_rank(cap: str, target_rank: int, trainable: int) -> None:
    """The old planner picked r̄ = 6 under 2,000,000 and 3 under 1,000,000 (init rank is not linear in r̄)."""
    start = time.perf_counter()
    run = run_of("method=adalora", f"budget.max_trainable_params={cap}")
    result = fit(run)
    assert (result.value, result.source, result.binds) == (target_rank, "cap", "trainable")
    assert result.counts["adapter"] == trainable <= int(cap)
    above = dataclasses.replace(run.method, target_rank=target_rank + 1)
    assert fit(dataclasses.replace(run, method=above, budget=dataclasses.replace(run.budget, max_params=None,
                                                                                  max_trainable_params=None))
               ).counts["adapter"] > int(cap)
    assert time.perf_counter() - start < 30  # a handful of meta-device builds


def test_cap_binds_adalora_effective_count_by_default() -> None:
    result = fit(run_of("method=adalora", "budget.max_params=2000000"))
    assert (result.value, result.binds, result.bound) == (12, "effective", 12 * PER_RANK)
    assert fit(run_of("method=adalora", "budget.max_params=2000000", "budget.binds=trainable")).value == 8


def test_invalid_knob_values_count_as_not_fitting() -> None:
    """init_rank=3 forbids r̄ > 3: the search stops there instead of raising (once a 27-line traceback)."""
    result = fit(run_of("method=adalora", "method.init_rank=3", "budget.max_trainable_params=2000000"))
    assert result.value == 3 and result.counts["adapter"] == 3 * PER_RANK


def test_nothing_fits_is_one_line_with_the_smallest_count_and_the_cap() -> None:
    with pytest.raises(BudgetError) as error:
        fit(run_of("method=adalora", "budget.max_params=1000"))
    message = str(error.value)
    assert "\n" not in message and f"{PER_RANK:,}" in message and "cap of 1,000" in message


def test_group_value_over_the_cap_fails_and_group_value_under_it_passes() -> None:
    with pytest.raises(BudgetError, match="over the cap of 1,000,000"):
        fit(run_of("method=lora", "budget=r8", "budget.max_params=1000000"))
    assert fit_budget(run_of("method=lora", "budget=r8", "budget.max_params=1400000")).r == 8


def test_percent_cap_is_a_share_of_the_frozen_backbone() -> None:
    result = fit(run_of("method=lora", "budget.max_percent=0.5"))
    backbone = result.counts["backbone"]
    assert backbone == 183_831_552 and result.cap == int(0.005 * backbone)
    assert result.value == result.cap // 165_888  # LoRA: 12 layers × 13,824 per rank


def test_methods_without_a_knob_are_checked_not_searched() -> None:
    assert fit(run_of("method=bitfit", "budget.max_params=200000")).knob is None
    with pytest.raises(BudgetError, match="102,912 trainable"):
        fit(run_of("method=bitfit", "budget.max_params=1000"))


# --- the group ----------------------------------------------------------------------------------------------


def test_knobs_set_a_method_by_name_and_win_over_rank() -> None:
    assert validate(compose(["method=lora", "budget=r8", "+budget.knobs.lora=3"])).method.r == 3
    assert validate(compose(["method=adalora", "budget=r8"])).method.target_rank == 8
    assert validate(compose(["method=sora", "budget=r2"])).method.r == 2


def test_a_group_value_the_method_rejects_is_one_config_line() -> None:
    with pytest.raises(ConfigError) as error:
        validate(compose(["method=adalora", "budget=r8", "method.init_rank=3"]))
    assert "budget.rank=8" in str(error.value) and "\n" not in str(error.value)


def test_planner_reads_capabilities_not_method_names(monkeypatch) -> None:
    """LoRA registered under a knob kind that rank budgets do not set: the planner goes by declarations alone."""
    entry = methods.get("lora")
    width = dataclasses.replace(entry, name="width_lora",
                                capabilities=dataclasses.replace(entry.capabilities, knob_kind="width"))
    monkeypatch.setitem(methods._REGISTRY, "width_lora", width)
    run = run_of("method=lora", "budget=r8")
    run = dataclasses.replace(run, method_name="width_lora", method=dataclasses.replace(run.method, r=5))
    result = fit(run)
    assert (result.value, result.source) == (5, "default")  # the budget's rank is not a width
    capped = fit(dataclasses.replace(run, budget=dataclasses.replace(run.budget, max_params=700_000)))
    assert (capped.value, capped.source) == (4, "cap")  # 165,888 per unit of r
    named = fit(dataclasses.replace(run, budget=dataclasses.replace(run.budget, knobs={"width_lora": 2})))
    assert (named.value, named.source) == (2, "knobs")


# --- the schema and the paper figures -------------------------------------------------------------------------


def test_budget_schema_checks_and_the_deprecated_alias() -> None:
    budget = validate(compose(["budget.max_trainable_params=5"])).budget
    assert (budget.max_params, budget.binds) == (5, "trainable")
    for bad, message in [(["budget.max_params=5", "budget.max_percent=1"], "not both"),
                         (["budget.binds=final"], "budget.binds"),
                         (["budget.max_params=5", "budget.max_trainable_params=5"], "deprecated alias"),
                         (["+budget.knobs.lora=0"], "budget.knobs.lora")]:
        with pytest.raises(ConfigError, match=message):
            validate(compose(bad))


# r16 is Table 3's BART-large budget only; it has no DeBERTaV3-base reference (test_table3_budgets... covers it)
@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "budget").glob("r*.yaml") if p.stem != "r16"))
def test_paper_budgets_compare_lora_and_adalora_with_their_references(name: str) -> None:
    rank = int(name[1:])
    lora = plan_row(run_of("method=lora", f"budget={name}"))
    adalora = plan_row(run_of("method=adalora", f"budget={name}"))
    assert lora[0]["trainable"] == rank * 165_888
    assert adalora[0]["effective"] == f"{rank * PER_RANK:,}"
    assert {c["source"] for c in lora[1]} >= {"AdaLoRA Table 9"}
    assert set(run_of(f"budget={name}").budget.knobs) <= set(methods.available())  # every named method registered


def test_table1_figures_on_r8() -> None:
    run = run_of("method=adalora", "budget=r8")
    (table1,) = [c for c in compare(run, fit(run)) if c["source"] == "AdaLoRA Table 1"]
    assert (table1["paper"], table1["ours"], table1["diff"], table1["relative"]) == (
        "1.27M", "1,327,680", "+57,680", "+4.5%")
    tiny = validate(compose(["method=adalora", "model=tiny_bert", "budget=r8"]))
    assert compare(tiny, fit(tiny)) == []  # the references are DeBERTaV3-base's


def test_table3_budgets_on_bart_large_are_ranks_1_2_8_16() -> None:
    """AdaLoRA Table 3's 0.13 / 0.26 / 1.10 / 2.20% on BART-large: one LoRA rank on the six matrix types of every
    encoder layer and of the decoder's self- and cross-attention costs 540,672 parameters (0.133%)."""
    from support import compose

    from peftbench.budget import count_on_meta
    from peftbench.config import validate

    counts = {budget: count_on_meta(validate(compose(["model=bart_large", "task=xsum", "method=lora",
                                                      f"budget={budget}"])))
              for budget in ("r1", "r16")}
    assert counts["r1"]["adapter"] == 540_672 and counts["r16"]["adapter"] == 16 * 540_672
    assert counts["r1"]["backbone"] == 406_291_456 and counts["r1"]["head"] == 0


# Bottleneck adapters on DeBERTaV3-base (12 blocks, h = 768): Houlsby 2L(2hd + d + h), Pfeiffer L(2hd + d + h).
ADAPTER_COUNTS = [("houlsby", "r2", 8, 313_536, "0.31M", "+3,536"), ("houlsby", "r4", 16, 608_640, "0.61M", "-1,360"),
                  ("houlsby", "r8", 32, 1_198_848, "1.22M", "-21,152"),  # 1.22M: no formula reproduces it
                  ("pfeiffer", "r2", 16, 304_320, "0.30M", "+4,320"), ("pfeiffer", "r4", 32, 599_424, "0.60M", "-576"),
                  ("pfeiffer", "r8", 64, 1_189_632, "1.18M", "+9,632")]


@pytest.mark.parametrize(("method", "budget", "bottleneck", "trainable", "paper", "diff"), ADAPTER_COUNTS)
def test_adapter_budgets_give_table1_counts_on_the_meta_device(method, budget, bottleneck, trainable, paper,
                                                              diff) -> None:
    row, comparisons = plan_row(run_of(f"method={method}", f"budget={budget}"))
    assert (row["knob"], row["from"], row["trainable"]) == (f"bottleneck={bottleneck}", "knobs", trainable)
    assert row["trainable"] == (2 if method == "houlsby" else 1) * 12 * (2 * 768 * bottleneck + bottleneck + 768)
    (table1,) = [c for c in comparisons if c["source"] == "AdaLoRA Table 1"]
    assert (table1["paper"], table1["ours"], table1["diff"]) == (paper, f"{trainable:,}", diff)


def test_parallel_adapter_keeps_its_default_under_a_group_and_searches_under_a_cap() -> None:
    row, comparisons = plan_row(run_of("method=parallel", "budget=r8"))
    assert (row["knob"], row["from"], row["trainable"]) == ("bottleneck=64", "default", 1_189_632)
    assert comparisons == []  # the papers give no figure for it
    result = fit(run_of("method=parallel", "budget.max_params=600000"))
    assert (result.value, result.source, result.counts["adapter"]) == (32, "cap", 599_424)
