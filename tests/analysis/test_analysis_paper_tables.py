"""AdaLoRA Tables 2 and 3 against fixture records whose numbers are worked out by hand here (see
analysis_fixtures.qa_metrics / summary_metrics): SQuAD in percent, ROUGE as fractions ×100."""

from __future__ import annotations

import io
import math
from pathlib import Path

import analysis_fixtures as fx
import pandas as pd
import pytest
import yaml

from peftbench.analysis import paper_tables, tables
from peftbench.analysis.report import report
from peftbench.results import iter_records, load
from peftbench.tasks import catalog

BUDGET_DIR = Path(__file__).resolve().parents[2] / "conf" / "budget"
SQRT2 = math.sqrt(2)  # sample std of two seeds two points apart


@pytest.fixture(scope="module")
def runs(qa_summary_results: Path) -> tuple[pd.DataFrame, list[dict]]:
    return load(qa_summary_results), iter_records(qa_summary_results)


def cell(comparison: pd.DataFrame, method: str, budget: str, task: str, metric: str) -> pd.Series:
    line = comparison[(comparison["method"] == method) & (comparison["budget"] == budget)
                      & (comparison["task"] == task) & (comparison["metric"] == metric)]
    assert len(line) == 1, (method, budget, task, metric)
    return line.iloc[0]


def test_table2_hand_computed_ours_paper_and_difference(runs) -> None:
    comparison = paper_tables.compare_paper_table(*runs, "adalora_table2")
    # AdaLoRA r1 (0.08%), SQuAD v1.1: EM 80 and 82 (recorded in percent, not scaled again) against 87.2.
    em = cell(comparison, "adalora", "r1", "squad", "exact_match")
    assert (em["ours"], em["n"], em["paper"], em["paper_budget"]) == (81.0, 2, 87.2, "0.08%")
    assert em["ours_std"] == pytest.approx(SQRT2) and em["diff"] == pytest.approx(81.0 - 87.2)
    assert em["source"] == "best/exact_match"
    # SQuAD v2.0 EM/F1 are exact/f1 at threshold 0 (70/72 and 73/75), not best_exact/best_f1 (5 points higher).
    exact = cell(comparison, "adalora", "r1", "squad_v2", "exact")
    assert exact["paper_metric"] == "exact_match" and exact["ours"] == 71.0
    assert exact["diff"] == pytest.approx(71.0 - 85.6)
    f1 = cell(comparison, "adalora", "r1", "squad_v2", "f1")
    assert f1["ours"] == 74.0 and f1["diff"] == pytest.approx(74.0 - 88.7)
    # LoRA r8 (0.65%) ran on the hub's official dev set: like for like.
    lora = cell(comparison, "lora", "r8", "squad", "f1")
    assert (lora["ours"], lora["paper"], lora["paper_budget"]) == (90.0, 93.1, "0.65%")  # F1 89 and 91
    assert lora["like_for_like"] and lora["data"] == "hub:rajpurkar/squad"


def test_table2_final_block_and_missing_cells(runs) -> None:
    comparison = paper_tables.compare_paper_table(*runs, "adalora_table2", metric_kind="final")
    em = cell(comparison, "adalora", "r1", "squad", "exact_match")  # final = best − 1: 79 and 81
    assert em["ours"] == 80.0 and em["diff"] == pytest.approx(80.0 - 87.2) and em["source"] == "final/exact_match"
    # AdaLoRA r8 never ran SQuAD v2.0: the paper's cell is listed with ours empty, never filled.
    missing = cell(comparison, "adalora", "r8", "squad_v2", "exact")
    assert math.isnan(missing["ours"]) and math.isnan(missing["diff"]) and missing["n"] == 0
    assert missing["paper"] == 86.0
    # Only budgets we ran: no 0.16% or 0.32% rows, no HAdapter/PAdapter rows.
    assert set(comparison["paper_budget"]) == {"100%", "0.65%", "0.08%"}
    assert set(comparison["method"]) == {"full", "lora", "adalora"}


def test_table2_says_when_data_is_not_the_papers(runs) -> None:
    comparison = paper_tables.compare_paper_table(*runs, "adalora_table2")
    split = cell(comparison, "adalora", "r1", "squad", "f1")
    assert not split["like_for_like"] and split["data"] == "article split of dev-v1.1.json (seed 42)"
    capped = cell(comparison, "full", "none", "squad", "exact_match")
    assert capped["paper_budget"] == "100%" and capped["ours"] == 85.0 and capped["diff"] == pytest.approx(-1.0)
    assert not capped["like_for_like"] and capped["data"] == "hub:rajpurkar/squad, first 500 eval examples"
    text = paper_tables.comparison_markdown(comparison, "adalora_table2", "deberta_v3_base", "best")
    assert ("| AdaLoRA | r1 | 0.08% | SQuAD v2.0 | exact (paper exact_match) | 71.00 ± 1.41 (n=2) | 85.60 | -14.60 "
            "| article split of dev-v2.0-cs224n-half.json (seed 42) | no |") in text
    assert "exact/f1 at null threshold 0" in text and "optimistic" in text


def test_table3_uses_test_rouge_lsum_from_final(runs) -> None:
    for kind in ("best", "final"):  # Table 3 always reads the test set, whichever block the report uses
        comparison = paper_tables.compare_paper_table(*runs, "adalora_table3", metric_kind=kind)
        r1 = cell(comparison, "adalora", "r16", "xsum", "rouge1")  # test ROUGE-1 0.40 and 0.42
        assert r1["ours"] == pytest.approx(41.0) and r1["n"] == 2  # the failed seed 9 is not counted
        assert r1["ours_std"] == pytest.approx(SQRT2) and r1["diff"] == pytest.approx(41.0 - 44.72)
        assert r1["source"] == "final/test_rouge1" and r1["paper_budget"] == "2.20%"
        rl = cell(comparison, "adalora", "r16", "xsum", "rougeLsum")  # 0.33/0.35; rougeL would be 30
        assert rl["paper_metric"] == "rougeL" and rl["ours"] == pytest.approx(34.0)
        assert rl["diff"] == pytest.approx(34.0 - 36.46)
        r2 = cell(comparison, "lora", "r2", "xsum", "rouge2")  # 0.17/0.19 at 0.26%
        assert r2["ours"] == pytest.approx(18.0) and r2["paper"] == 19.89 and r2["paper_budget"] == "0.26%"
        assert r2["like_for_like"]


def test_table3_rows_cnn_and_unreported_runs(runs) -> None:
    comparison = paper_tables.compare_paper_table(*runs, "adalora_table3")
    # SoRA and LoRA r4 are not in the paper; r8 and r1 never ran: none of them is listed.
    assert set(zip(comparison["method"], comparison["budget"])) == {("lora", "r16"), ("adalora", "r16"),
                                                                     ("lora", "r2"), ("adalora", "r2")}
    cnn = cell(comparison, "lora", "r16", "cnn_dailymail", "rouge2")  # one seed: 0.22, no std
    assert cnn["ours"] == pytest.approx(22.0) and cnn["n"] == 1 and math.isnan(cnn["ours_std"])
    assert cnn["diff"] == pytest.approx(22.0 - 21.84)
    assert not cnn["like_for_like"] and cnn["data"] == "by document split of test.jsonl (seed 42)"
    assert math.isnan(cell(comparison, "adalora", "r16", "cnn_dailymail", "rouge1")["ours"])
    assert list(comparison["paper_budget"].drop_duplicates()) == ["2.20%", "0.26%"]  # largest budget first
    text = paper_tables.comparison_markdown(comparison, "adalora_table3", "bart_large", "best")
    assert ("| AdaLoRA | r16 | 2.20% | XSum | rougeLsum (paper rougeL) | 34.00 ± 1.41 (n=2) | 36.46 | -2.46 "
            "| hub:EdinburghNLP/xsum | yes |") in text
    latex = paper_tables.comparison_latex(comparison, "adalora_table3", "bart_large", "best")
    assert "2.20\\%" in latex and "–" not in latex


def test_budget_table_shows_squad_in_percent_once(runs) -> None:
    frame, _ = runs
    table = tables.budget_table(frame[frame["model"] == fx.QA_MODEL])
    em = table.cells[(table.cells["method"] == "adalora") & (table.cells["budget"] == "r1")
                     & (table.cells["task"] == "squad") & (table.cells["metric"] == "exact_match")].iloc[0]
    assert em["mean"] == 81.0  # recorded in percent: not ×100 again
    rouge = tables.budget_table(frame[frame["model"] == fx.SUMMARY_MODEL])
    r1 = rouge.cells[(rouge.cells["method"] == "adalora") & (rouge.cells["budget"] == "r16")
                     & (rouge.cells["metric"] == "rouge1")].iloc[0]
    assert r1["mean"] == pytest.approx(45.0)  # best block (validation 0.45/0.47 − 0.01), fraction ×100


def test_reference_csvs_match_catalogue_and_budget_configs() -> None:
    sources = {"adalora_table2": "AdaLoRA Table 9", "adalora_table3": "AdaLoRA Table 3"}
    for name, spec in paper_tables.PAPER_TABLES.items():
        reference = tables.load_reference(name)
        assert tables.REFERENCE_MODELS[name] == spec.model
        for row in reference.itertuples(index=False):
            metric = paper_tables.record_metric(row.task, row.metric)
            assert metric in catalog.task(row.task).metrics, (name, row.task, metric)
            assert metric in dict(catalog.task(row.task).columns)
            if row.budget_name == "none":
                assert row.method == "full" and row.budget == "100%"
                continue
            entries = yaml.safe_load((BUDGET_DIR / f"{row.budget_name}.yaml").read_text())["reference"]
            knob = {"hadapter": "houlsby", "padapter": "pfeiffer"}.get(row.method, row.method)  # conf's knob names
            printed = [e["percent"][knob] for e in entries
                       if e["source"] == sources[name] and e["model"] == spec.model]
            assert printed == [float(row.budget.rstrip("%"))], (name, row.method, row.budget_name)


def test_report_writes_table2_and_table3(qa_summary_results: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    names = {p.relative_to(out).as_posix() for p in report(qa_summary_results, out, reference=True)}
    for stem in ("tables/vs_paper_deberta-v3-base_table2", "tables/vs_paper_bart-large_table3"):
        assert {f"{stem}.md", f"{stem}.tex", f"{stem}.csv"} <= names
    assert "tables/vs_paper_deberta-v3-base.md" not in names  # no GLUE runs: no Table 1 comparison
    frame = pd.read_csv(out / "tables/vs_paper_bart-large_table3.csv", dtype={"budget": str})
    line = frame[(frame["method"] == "lora") & (frame["budget"] == "r16") & (frame["task"] == "xsum")
                 & (frame["metric"] == "rouge1")].iloc[0]
    assert (line["model"], line["paper"]) == ("bart_large", 43.95)
    assert line["ours"] == pytest.approx(40.0) and line["diff"] == pytest.approx(40.0 - 43.95)
    without = {p.relative_to(tmp_path / "plain").as_posix() for p in report(qa_summary_results, tmp_path / "plain")}
    assert not any("vs_paper" in name for name in without)
    csv = paper_tables.comparison_csv(paper_tables.compare_paper_table(
        load(qa_summary_results), iter_records(qa_summary_results), "adalora_table2"), "deberta_v3_base")
    assert pd.read_csv(io.StringIO(csv))["like_for_like"].dtype == bool
