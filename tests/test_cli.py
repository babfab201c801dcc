"""The command line: bad input fails with one line before anything loads or is written; the planner."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support import ROOT


def peftbench(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PEFTBENCH_ROOT": str(cwd)}
    return subprocess.run([sys.executable, "-m", "peftbench", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["method=lorax"], "unknown method 'lorax'; choose one of:"),
        (["model=gpt5"], "unknown model 'gpt5'; choose one of:"),
        (["task=squad"], "unknown task 'squad'; choose one of:"),
        (["trainer.lrr=1"], "trainer.lrr: unknown key; allowed keys in trainer:"),
        (["method.r=-2"], "method.r must be a positive rank, got -2"),
        (["task=cola", "data_dir=/nonexistent/glue"], "data_dir=/nonexistent/glue: no folder CoLA/"),
        (["budget.max_trainable_params=10"], "over the cap of 10"),
        (["experiment=nope"], "unknown experiment 'nope'"),
    ],
)
def test_bad_input_fails_before_anything_is_written(tmp_path, args: list[str], message: str) -> None:
    result = peftbench(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert result.stderr.strip().count("\n") == 0  # one line
    assert not (tmp_path / "results").exists()


def test_planner_reproduces_adalora_table1_lora_params() -> None:
    for budget, expected in (("r8", "1,327,104"), ("r2", "331,776")):
        result = peftbench("plan", "model=deberta_v3_base", "method=lora", f"budget={budget}", cwd=ROOT)
        assert result.returncode == 0, result.stderr
        row = next(line for line in result.stdout.splitlines() if line.startswith("lora"))
        assert row.split()[4] == expected
        assert "head" in result.stdout


TINY = ["model=tiny_bert", "trainer=tiny", "task.max_train_samples=32", "task.max_eval_samples=16"]


def test_single_run_prints_its_record_and_report_with_a_heatmap(tmp_path) -> None:
    result = peftbench(*TINY, "experiment_name=cli", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "record: " in result.stdout and "report: " in result.stdout
    heatmaps = list((tmp_path / "reports" / "cli").rglob("heatmap_*.png"))
    assert len(heatmaps) == 1, result.stdout[-2000:]


def test_sparsity_recipe_runs_from_the_cli(tmp_path) -> None:
    result = peftbench("+experiment=sora_sparsity_quick", *TINY, "recipe.stage_epochs=1", "recipe.num_thresholds=2",
                       cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (record,) = (tmp_path / "results" / "sora_sparsity_quick").rglob("run.json")
    assert '"recipe": "sora_sparsity"' in record.read_text()
    assert list((tmp_path / "reports" / "sora_sparsity_quick").rglob("sora_curves_*.png"))
