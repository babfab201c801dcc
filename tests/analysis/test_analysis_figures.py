"""Rank grids, SoRA stage means, the budget curve and the report folder, checked against the records."""

from __future__ import annotations

import copy
from pathlib import Path

import analysis_fixtures as fx
import numpy as np
import pandas as pd
import pytest

from peftbench.analysis import curves, ranks
from peftbench.analysis.__main__ import main
from peftbench.analysis.report import report


def adalora_run(seed: int) -> dict:
    return next(r for r in fx.glue_records()
                if (r["method"], r["budget"], r["task"], r["seed"]) == ("adalora", "r8", "cola", seed))


def test_rank_grid_places_every_final_rank() -> None:
    record = adalora_run(0)
    grid, source = ranks.rank_grid(record)
    assert source == "final_ranks"
    assert list(grid.columns) == list(fx.MATRIX_TYPES) and list(grid.index) == list(range(fx.LAYERS))
    for name, rank in record["method_records"]["final_ranks"].items():
        info = record["method_records"]["matrices"][name]
        assert grid.loc[info["layer"], info["type"]] == rank


def test_mean_grid_averages_seeds_cell_by_cell() -> None:
    grids = [ranks.rank_grid(adalora_run(seed))[0] for seed in fx.SEEDS]
    expected = np.mean([g.to_numpy() for g in grids], axis=0)
    np.testing.assert_allclose(ranks.mean_grid(grids).to_numpy(), expected)


def test_lora_heatmap_reads_final_ranks_or_says_why_not() -> None:
    record = fx.quickstart_record()
    grid, reason = ranks.rank_grid(record)
    assert grid is None and "method_records.matrices" in reason
    with_layout = copy.deepcopy(record)
    with_layout["method_records"] = {"matrices": fx.matrices()}
    grid, reason = ranks.rank_grid(with_layout)
    assert grid is None and "no final_ranks" in reason
    with_layout["method_records"]["final_ranks"] = dict.fromkeys(fx.matrices(), 8)
    grid, source = ranks.rank_grid(with_layout)
    assert (grid.to_numpy() == 8).all() and source == "final_ranks"


def test_sora_stage_means_equal_numpy() -> None:
    records = [r for r in fx.sora_records() if r["task"] == "rte"]
    assert "sparsity" in records[1] and records[1]["sparsity"]["stages"][3]["memorization"] is None
    means = curves.mean_stages(curves.stage_frame(records))
    for stage in range(8):
        row = means[means["stage"] == stage].iloc[0]
        for column in ("memorization", "generalization", "nonzero_parameters"):
            values = [curves.record_stages(r)[stage][column] for r in records]
            assert row[column] == pytest.approx(np.nanmean(np.array(values, dtype=float)))
        assert row["n"] == len(records)
    assert curves.xi_label(3e-4) == "ξ=3e-4" and curves.xi_label(0.0) == "ξ=0"


def test_cubic_budget_matches_recorded_budgets() -> None:
    methods = adalora_run(0)["method_records"]
    schedule = methods["budget_schedule"]
    steps = np.array([entry["step"] for entry in methods["rank_history"]])
    recorded = [entry["budget"] for entry in methods["rank_history"]]
    np.testing.assert_array_equal(ranks.cubic_budget(steps, schedule), recorded)
    assert ranks.cubic_budget(np.array([0]), schedule)[0] == schedule["b0"]


def test_report_writes_tables_figures_and_index(small_results: Path, tmp_path: Path) -> None:
    written = report(small_results, tmp_path / "report", reference=True)
    out = tmp_path / "report"
    assert all(path.exists() for path in written) and written[-1] == out / "README.md"
    names = {path.relative_to(out).as_posix() for path in written}
    for stem in ("tables/budget_table_deberta-v3-base", "tables/budget_table_roberta-large",
                 "tables/budget_table_minilm", "tables/vs_paper_deberta-v3-base"):
        assert {f"{stem}.md", f"{stem}.tex", f"{stem}.csv"} <= names
    for stem in ("figures/sora_curves_roberta-large", "figures/ranks/heatmap_deberta-v3-base_cola_adalora_r8",
                 "figures/ranks/heatmap_roberta-large_rte_sora_r8", "figures/ranks/evolution_adalora-r8-cola-s0",
                 "figures/ranks/budget_adalora-r8-cola-s0"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names
    assert not any("heatmap_minilm" in name for name in names)  # quickstart LoRA has no layer layout
    assert not any(name.startswith("tables/vs_paper_") and "deberta" not in name for name in names)
    index = (out / "README.md").read_text()
    for name in names - {"README.md"}:
        assert f"]({name})" in index
    assert "lora-r8-cola-s7" in index and "CUDA out of memory" in index  # the failed run is listed
    assert "heatmap for minilm / rotten_tomatoes / lora / none" in index  # and the skipped heatmap explained
    assert "no paper comparison for roberta_large" in index
    table = pd.read_csv(out / "tables/budget_table_deberta-v3-base.csv")
    assert set(table["n"].dropna()) == {2}  # seeds 0 and 1; the failed seed 7 is not counted


def test_report_is_deterministic_and_cli_filters_experiment(small_results: Path, tmp_path: Path) -> None:
    first = report(small_results, tmp_path / "a", experiment="glue_budget")
    assert main(["report", str(small_results), "--out", str(tmp_path / "b"), "--experiment", "glue_budget"]) == 0
    for path in first:
        twin = tmp_path / "b" / path.relative_to(tmp_path / "a")
        if path.name != "README.md":  # the index names its own output folder
            assert path.read_bytes() == twin.read_bytes(), path.name
    assert not any("sora" in path.name or "minilm" in path.name for path in first)


def test_report_on_an_empty_folder_writes_only_the_index(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    assert report(tmp_path / "results", tmp_path / "out") == [tmp_path / "out" / "README.md"]
    assert "none found" in (tmp_path / "out" / "README.md").read_text()
