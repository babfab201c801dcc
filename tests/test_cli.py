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
        (["task=squadx"], "unknown task 'squadx'; choose one of:"),
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


def plan_table(stdout: str) -> dict[tuple[str, str], dict[str, str]]:
    """The plan's first table as {(method, budget): {column: cell}}."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("method"))
    header = lines[start].split()
    rows = {}
    for line in lines[start + 2:]:
        if not line.strip():
            break
        cells = dict(zip(header, line.split()))
        rows[cells["method"], cells["budget"]] = cells
    return rows


def test_planner_reproduces_adalora_table1_params_for_every_method() -> None:
    from peftbench import methods

    result = peftbench("plan", "model=deberta_v3_base", "budget=r2,r8", cwd=ROOT)
    assert result.returncode == 0, result.stderr
    rows = plan_table(result.stdout)
    assert {method for method, _ in rows} == set(methods.available())
    for budget, lora, adalora in (("r8", "1,327,104", "1,327,680"), ("r2", "331,776", "331,920")):
        assert (rows["lora", budget]["knob"], rows["lora", budget]["trainable"]) == (f"r={budget[1]}", lora)
        assert rows["adalora", budget]["effective"] == adalora  # b(T) spread uniformly
        assert rows["full", budget]["knob"] == rows["bitfit", budget]["knob"] == "-"
    assert "AdaLoRA Table 1" in result.stdout and "no uniform rank gives it" in result.stdout
    assert "head" in result.stdout


def test_planner_search_skips_knob_values_the_method_rejects() -> None:
    result = peftbench("plan", "model=deberta_v3_base", "method=adalora", "method.init_rank=3",
                       "budget.max_trainable_params=2000000", cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert plan_table(result.stdout)["adalora", "none"]["knob"] == "target_rank=3"
    result = peftbench("plan", "model=deberta_v3_base", "method=adalora", "budget.max_params=1000", cwd=ROOT)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "165,960 effective parameters at the smallest target_rank=1" in result.stderr


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


def test_the_collector_is_off_for_imports_and_on_for_the_run() -> None:
    """``settle_collector`` freezes what the imports made, once, and switches the collector back on."""
    code = ("import gc; from peftbench import cli; gc.disable(); import torch; cli.settle_collector(); "
            "frozen = gc.get_freeze_count(); junk = [[] for _ in range(1000)]; cli.settle_collector(); "
            "print(gc.isenabled(), frozen > 50_000, gc.get_freeze_count() == frozen)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["True", "True", "True"]
