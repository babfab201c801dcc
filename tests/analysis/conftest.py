"""Results folders built from fixture records (analysis_fixtures.py), once per test session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the fixture builder sits beside the tests

import analysis_fixtures as fx  # noqa: E402


@pytest.fixture(scope="session")
def glue_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full GLUE budget grid (tables only: no figures are drawn from it in tests)."""
    return fx.write_results(tmp_path_factory.mktemp("glue"), fx.glue_records())


@pytest.fixture(scope="session")
def small_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few runs of every kind, small enough to draw every figure quickly: two AdaLoRA and two LoRA seeds
    on CoLA, two SoRA sparsity runs, the quickstart LoRA run, and a failed run."""
    keep = {("adalora", "r8", "cola", 0), ("adalora", "r8", "cola", 1), ("lora", "r8", "cola", 0),
            ("lora", "r8", "cola", 1), ("lora", "r8", "cola", 7)}
    records = [r for r in fx.glue_records() if (r["method"], r["budget"], r["task"], r["seed"]) in keep]
    records += [r for r in fx.sora_records() if r["task"] == "rte"] + [fx.quickstart_record()]
    return fx.write_results(tmp_path_factory.mktemp("small"), records)


@pytest.fixture(scope="session")
def qa_summary_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """AdaLoRA Tables 2 and 3: SQuAD runs on DeBERTaV3-base, XSum and CNN/DailyMail runs on BART-large."""
    return fx.write_results(tmp_path_factory.mktemp("qa_summary"), fx.qa_records() + fx.summary_records())
