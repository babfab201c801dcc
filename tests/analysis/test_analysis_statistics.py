"""Seed statistics against numbers worked by hand (closed forms of the t distribution with 2 degrees of
freedom) and against scipy run directly on the fixture values."""

from __future__ import annotations

import io
import math
from collections import defaultdict
from pathlib import Path

import analysis_fixtures as fx
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from peftbench.analysis import stat_tables
from peftbench.analysis import statistics as st
from peftbench.analysis.__main__ import main
from peftbench.results import load

# Hand-worked: seeds 0, 1, 2; method 0.80, 0.82, 0.81 against reference 0.78, 0.79, 0.80 (×100 in tables).
METHOD = {0: 80.0, 1: 82.0, 2: 81.0}
REFERENCE = {0: 78.0, 1: 79.0, 2: 80.0}
T_975_2 = 4.302652729911275  # t quantile 0.975 with 2 degrees of freedom (any t table)


def test_t_interval_by_hand() -> None:
    # mean 81, deviations −1, 1, 0 -> s² = 2 / 2 = 1; half width t · s / √n.
    interval = st.t_interval(list(METHOD.values()))
    half = T_975_2 * 1.0 / math.sqrt(3)
    assert (interval.mean, interval.std, interval.n) == (pytest.approx(81.0), pytest.approx(1.0), 3)
    assert interval.low == pytest.approx(81.0 - half) and interval.high == pytest.approx(81.0 + half)
    assert interval.low == pytest.approx(78.5159, abs=1e-4) and interval.note == ""


def test_paired_test_by_hand() -> None:
    # Differences 2, 3, 1: mean 2, s 1, t = 2 / (1 / √3) = 2√3. With 2 df the t CDF is 1/2 + t / (2√(2 + t²)),
    # so the two-sided p is 1 − t / √(2 + t²) = 0.0742. Sign flips: only ±(2, 3, 1) reach |sum| 6 -> p = 2/8.
    test = st.paired_test(METHOD, REFERENCE)
    t = 2 * math.sqrt(3)
    assert (test.n, test.diff, test.note) == (3, pytest.approx(2.0), "")
    assert test.t == pytest.approx(t)
    assert test.p_t == pytest.approx(1 - t / math.sqrt(2 + t * t)) and test.p_t == pytest.approx(0.07418, abs=1e-5)
    assert test.p_perm == pytest.approx(0.25)
    assert not test.significant(0.05) and test.significant(0.10)


def test_fewer_than_three_seeds_say_so() -> None:
    interval = st.t_interval([80.0, 82.0])
    assert np.isnan(interval.low) and np.isnan(interval.high)
    assert interval.std == pytest.approx(math.sqrt(2)) and interval.note == "no CI: n=2 < 3 seeds"
    single = st.t_interval([80.0])
    assert np.isnan(single.std) and single.note == "no CI: n=1 < 3 seeds"
    test = st.paired_test(METHOD, {0: 78.0, 1: 79.0})
    assert test.n == 2 and test.diff == pytest.approx(2.5) and np.isnan(test.p_t) and np.isnan(test.p_perm)
    assert test.note == "no test: 2 shared seeds < 3" and not test.significant()


def test_method_missing_seeds_is_paired_on_shared_seeds_only() -> None:
    extra = METHOD | {3: 95.0, 4: 60.0}  # seeds the reference never ran: not in the test
    assert st.paired_test(extra, REFERENCE) == st.paired_test(METHOD, REFERENCE)
    assert st.paired_test(METHOD, REFERENCE | {7: 10.0}) == st.paired_test(METHOD, REFERENCE)


def test_constant_difference_has_no_t_but_a_permutation_p() -> None:
    test = st.paired_test({0: 81.0, 1: 82.0, 2: 83.0}, {0: 80.0, 1: 81.0, 2: 82.0})
    assert np.isnan(test.t) and test.p_perm == pytest.approx(0.25) and "same on every seed" in test.note


def test_sign_flip_matches_full_enumeration() -> None:
    differences = np.array([0.5, -1.0, 2.0, 1.5, 0.25])
    flips = [np.array(signs) for signs in np.ndindex(*(2,) * 5)]
    null = [abs(np.mean(differences * (1 - 2 * s))) for s in flips]
    expected = np.mean([v >= abs(differences.mean()) - 1e-12 for v in null])
    assert st.sign_flip_p(differences) == pytest.approx(expected)


def hand_records() -> list[dict]:
    """CoLA runs carrying the hand-worked values: AdaLoRA also ran seed 3, LoRA only 0–2; RTE has 2 seeds each."""
    records = []
    for method, values in (("adalora", METHOD | {3: 90.0}), ("lora", REFERENCE)):
        for task, seeds in (("cola", values), ("rte", {0: 70.0, 1: 71.0})):
            for seed, value in seeds.items():
                record = fx.make_record(experiment="hand", method=method, task=task, budget="r8", seed=seed)
                metric = fx.MAIN_METRIC.get(task, "accuracy")
                record["metrics"]["best"] = {metric: value / 100}
                record["metrics"]["final"] = {metric: value / 100 - 0.01}
                records.append(record)
    return records


@pytest.fixture(scope="module")
def hand_frame(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return load(fx.write_results(tmp_path_factory.mktemp("hand"), hand_records()))


def cell(table: stat_tables.StatTable, method: str, task: str) -> pd.Series:
    return table.cells[(table.cells["method"] == method) & (table.cells["task"] == task)].iloc[0]


def test_stat_table_cells_by_hand(hand_frame: pd.DataFrame) -> None:
    table = stat_tables.stat_table(hand_frame, metric_kind="best", alpha=0.1)
    ada = cell(table, "adalora", "cola")
    seeds = list((METHOD | {3: 90.0}).values())
    interval = stats.t.interval(0.95, len(seeds) - 1, loc=np.mean(seeds), scale=stats.sem(seeds))
    assert ada["n"] == 4 and ada["mean"] == pytest.approx(np.mean(seeds))
    assert (ada["ci_low"], ada["ci_high"]) == (pytest.approx(interval[0]), pytest.approx(interval[1]))
    assert ada["n_shared"] == 3 and ada["diff"] == pytest.approx(2.0) and ada["t"] == pytest.approx(2 * math.sqrt(3))
    assert ada["significant"]  # p = 0.074 < alpha 0.1
    text = stat_tables.stat_markdown(table)
    assert "| AdaLoRA | r8 | CoLA MCC | 4 |" in text and "+2.00†" in text and "t=3.46, p=0.074†" in text
    assert "| LoRA | r8 | CoLA MCC | 3 | 79.00 ± 1.00 | [76.52, 81.48] | reference |" in text
    rte = ("| AdaLoRA | r8 | RTE Acc | 2 | 70.50 ± 0.71 | no CI: n=2 < 3 seeds | +0.00 | 2 "
           "| no test: 2 shared seeds < 3 | no test |")
    assert rte in text


def test_alpha_controls_the_mark(hand_frame: pd.DataFrame) -> None:
    table = stat_tables.stat_table(hand_frame)  # alpha 0.05
    assert not cell(table, "adalora", "cola")["significant"] and "†" not in stat_tables.stat_rows(table)[1][0]
    assert "p < 0.05" in stat_tables.stat_caption(table)


def test_reference_method_is_configurable(hand_frame: pd.DataFrame) -> None:
    table = stat_tables.stat_table(hand_frame, reference="adalora")
    lora = cell(table, "lora", "cola")
    assert lora["diff"] == pytest.approx(-2.0) and lora["t"] == pytest.approx(-2 * math.sqrt(3))
    assert "Δ vs AdaLoRA" in stat_tables.stat_markdown(table)


def test_best_is_labelled_optimistic_and_final_plainly(hand_frame: pd.DataFrame) -> None:
    best = stat_tables.stat_markdown(stat_tables.stat_table(hand_frame, metric_kind="best"))
    final_table = stat_tables.stat_table(hand_frame, metric_kind="final")
    final = stat_tables.stat_markdown(final_table)
    assert "selected on the reported (validation) set — optimistic" in best and "(optimistic)" in best
    assert "optimistic" not in final and "metrics.final" in final
    assert cell(final_table, "lora", "cola")["mean"] == pytest.approx(78.0)
    latex = stat_tables.stat_latex(stat_tables.stat_table(hand_frame, alpha=0.1))
    for command in ("$^\\dagger$", "$\\Delta$", "$2/2^n$", "n=2 $<$ 3", "\\toprule"):
        assert command in latex
    assert "†" not in latex and "Δ" not in latex


def test_fixture_cells_equal_scipy(glue_results: Path) -> None:
    table = stat_tables.stat_table(load(glue_results), metric_kind="final")
    frame = pd.read_csv(io.StringIO(stat_tables.stat_csv(table)), dtype={"budget": str})
    values: dict[tuple, dict[int, float]] = defaultdict(dict)
    for record in fx.glue_records():
        if record["status"] == "completed":
            for metric, value in record["metrics"]["final"].items():
                values[(record["method"], record["budget"], record["task"], metric)][record["seed"]] = 100 * value
    for row in frame.itertuples():
        mine = values[(row.method, row.budget, row.task, row.metric)]
        assert row.n == len(mine) and row.mean == pytest.approx(np.mean(list(mine.values())))
        reference = values.get(("lora", row.budget, row.task, row.metric))
        if row.method == "lora":
            assert row.test_note == "reference method"
        elif reference is None:
            assert row.test_note == f"no test: no LoRA run at budget {row.budget}"
        elif len(set(mine) & set(reference)) < 3:
            assert row.test_note.startswith("no test:") and np.isnan(row.p_t)
        else:
            shared = sorted(set(mine) & set(reference))
            result = stats.ttest_rel([mine[s] for s in shared], [reference[s] for s in shared])
            assert row.t == pytest.approx(result.statistic) and row.p_t == pytest.approx(result.pvalue)
            assert row.significant == (result.pvalue < 0.05)


def test_report_writes_both_statistics_tables_and_cost(tmp_path: Path) -> None:
    results = fx.write_results(tmp_path / "results", hand_records())  # no rank records: no figures to draw
    assert main(["report", str(results), "--out", str(tmp_path), "--reference-method", "adalora",
                 "--alpha", "0.1"]) == 0
    for stem in ("stats_best", "stats_final", "cost"):
        for suffix in ("md", "tex", "csv"):
            assert (tmp_path / "tables" / f"{stem}_deberta-v3-base.{suffix}").is_file()
    index = (tmp_path / "README.md").read_text()
    assert "### Statistics, deberta_v3_base, metrics.best" in index and "### Cost, deberta_v3_base" in index
    assert "reference method adalora, alpha 0.1" in index and "Δ vs AdaLoRA" in index
    with pytest.raises(SystemExit):
        main(["report", str(results), "--out", str(tmp_path), "--alpha", "5"])
