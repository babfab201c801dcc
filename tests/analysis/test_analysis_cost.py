"""Cost tables against numbers computed by hand from the fixture records (analysis_fixtures.py)."""

from __future__ import annotations

import io

import analysis_fixtures as fx
import numpy as np
import pandas as pd
import pytest

from peftbench.analysis import cost


def glue_table(records: list[dict] | None = None, reference: str = "lora") -> cost.CostTable:
    return cost.cost_table(fx.glue_records() if records is None else records, fx.GLUE_MODEL, reference)


def row(table: cost.CostTable, method: str, budget: str, task: str = "cola") -> pd.Series:
    rows = table.rows
    return rows[(rows["method"] == method) & (rows["budget"] == budget) & (rows["task"] == task)].iloc[0]


def test_recorded_cost_gives_throughput_per_run() -> None:
    record = fx.make_record(experiment="x", method="adalora", task="cola", budget="r8", seed=2, with_cost=True)
    line = cost.run_cost(record)
    wall = 600 * 1.1 + 20  # TIME_FACTOR adalora, + 10 s per seed
    assert line["wall_time_min"] == pytest.approx(wall / 60) and line["optimizer_steps"] == 1000
    assert line["examples_per_s"] == pytest.approx(32_000 / wall)
    assert line["tokens_per_s"] == pytest.approx((3_200_000 + 14) / wall)
    assert line["cuda_mb"] == pytest.approx(4400.0) and line["device"] == fx.DEVICE
    assert line["examples_source"] == "recorded"


def test_fallback_estimates_examples_and_leaves_tokens_unknown() -> None:
    record = fx.make_record(experiment="x", method="lora", task="cola", budget="r8", seed=0)
    record["config"]["trainer"]["gradient_accumulation_steps"] = 2
    line = cost.run_cost(record)
    assert "cost" not in record and line["device"] == "unknown"
    assert line["examples_per_s"] == pytest.approx(1000 * 32 * 2 / 600)  # steps × batch × accumulation / s
    assert np.isnan(line["tokens_per_s"]) and np.isnan(line["cuda_mb"])
    assert line["examples_source"].startswith("estimated")


def test_group_means_and_ratios_to_lora_by_hand() -> None:
    table = glue_table()
    lora_walls = [600 + 10 * s for s in fx.SEEDS]
    ada_walls = [660 + 10 * s for s in fx.SEEDS]
    lora, ada = row(table, "lora", "r8"), row(table, "adalora", "r8")
    assert lora["n"] == 3 and lora["wall_time_min"] == pytest.approx(np.mean(lora_walls) / 60)
    assert ada["ratio_wall_time_min"] == pytest.approx(np.mean(ada_walls) / np.mean(lora_walls))
    lora_speed = np.mean([32_000 / w for w in lora_walls])
    ada_speed = np.mean([32_000 / w for w in ada_walls])
    assert ada["ratio_examples_per_s"] == pytest.approx(ada_speed / lora_speed)
    ada_tokens = np.mean([(3_200_000 + 7 * s) / w for s, w in zip(fx.SEEDS, ada_walls)])
    assert ada["tokens_per_s"] == pytest.approx(ada_tokens)
    assert ada["ratio_cuda_mb"] == pytest.approx(1.1) and ada["ratio_optimizer_steps"] == pytest.approx(1.0)
    assert lora["ratio_wall_time_min"] == pytest.approx(1.0) and lora["ratio_note"] == ""


def test_missing_reference_and_other_device_give_no_ratio() -> None:
    records = fx.glue_records()
    for record in records:
        if (record["method"], record["task"], record["budget"]) == ("adalora", "cola", "r8") and record["seed"] == 1:
            record["cost"]["device"] = "cpu"
    table = glue_table(records)
    mixed = row(table, "adalora", "r8")
    assert mixed["device"] == f"cpu, {fx.DEVICE}" and mixed["ratio_note"] == "devices differ"
    assert np.isnan(mixed["ratio_wall_time_min"])
    full = row(table, "full", "none")
    assert full["ratio_note"] == "no LoRA run at this budget" and np.isnan(full["ratio_examples_per_s"])
    stsb = row(table, "adalora", "r2", task="stsb")  # LoRA r2 never ran STS-B
    assert np.isnan(stsb["ratio_wall_time_min"])


def test_markdown_shows_unknown_tokens_as_a_gap_not_zero() -> None:
    records = [fx.quickstart_record()]
    records[0]["total_steps"] = 50
    table = cost.cost_table(records, "minilm")
    text = cost.cost_markdown(table)
    header = [cell.strip() for cell in text.splitlines()[2].strip("|").split("|")]
    body = [cell.strip() for cell in text.splitlines()[4].strip("|").split("|")]
    assert "Tokens/s" in header and "Peak CUDA (MB)" not in header  # CPU-only records: no CUDA column
    assert body[header.index("Tokens/s")] == "–"
    assert body[header.index("Examples/s")] == f"{50 * 32 / records[0]['wall_time_s']:.1f}"
    assert "examples estimated from steps × batch" in body[-1]


def test_renderings_agree(tmp_path) -> None:
    table = glue_table(reference="adalora")
    frame = pd.read_csv(io.StringIO(cost.cost_csv(table)), dtype={"budget": str})
    assert len(frame) == 5 * 4 - 1 and set(frame["reference"]) == {"adalora"}
    assert frame.loc[(frame["method"] == "adalora"), "ratio_wall_time_min"].eq(1.0).all()
    markdown = cost.cost_markdown(table)
    assert "| CoLA | LoRA | r8 | 3 |" in markdown and f"(×{610 / 670:.2f})" in markdown
    latex = cost.cost_latex(table)
    assert latex.count("\\midrule") == 1 + 3  # after the header, then before each new task
