"""Tiny end-to-end runs: every registered method, and every GLUE task type, on real rows."""

from __future__ import annotations

import json

import pytest
from support import compose, tiny_overrides

from peftbench import methods
from peftbench.train import train


@pytest.mark.parametrize("method", methods.available())
def test_every_method_trains_and_records(run_tiny, method: str) -> None:
    quantization = methods.get(method).method.quantization  # QLoRA: random-init weights cannot be quantised
    backbone = ["model=minilm", f"model.quantization={quantization}", "task.max_length=32"] if quantization else []
    record = run_tiny(f"method={method}", "task=rotten_tomatoes", *backbone)
    assert record["status"] == "completed"
    assert len(record["history"]) == 2  # eval_every 3 over 6 steps
    parameters = record["parameters"]
    assert 0 < parameters["trainable"] <= parameters["total"]
    assert parameters["effective"] > 0
    assert set(record["metrics"]["final"]) >= {"accuracy", "f1", "test_accuracy", "test_f1"}


def test_methods_train_what_they_claim(run_tiny) -> None:
    counts = {m: run_tiny(f"method={m}")["parameters"] for m in ("full", "bitfit", "lora")}
    assert counts["full"]["trainable"] == counts["full"]["total"]
    assert counts["bitfit"]["adapter"] < counts["lora"]["adapter"] < counts["full"]["adapter"]
    # LoRA r=8 on tiny_bert (hidden 32, FFN 64, 2 layers): 2 * 8 * (4 * (32 + 32) + 2 * (32 + 64)) = 7,168
    assert counts["lora"]["adapter"] == 7168


@pytest.mark.parametrize(("task", "metric"), [("cola", "matthews_correlation"), ("mrpc", "f1"),
                                              ("stsb", "correlation")])
def test_glue_task_types_single_pair_regression(run_tiny, glue_dir, task: str, metric: str) -> None:
    record = run_tiny(f"task={task}", f"data_dir={glue_dir}")
    assert record["status"] == "completed"
    assert metric in record["metrics"]["final"]
    assert record["data"]["used"]["train"] == 48


@pytest.mark.parametrize("model", ["tiny_deberta", "tiny_roberta", "tiny_bart"])
def test_tiny_architectures_train_on_pairs(tmp_path, glue_dir, model: str) -> None:
    record = train(compose(tiny_overrides(tmp_path, f"model={model}", "task=rte", f"data_dir={glue_dir}")))
    assert record["status"] == "completed" and record["parameters"]["adapter"] > 0
    layers = {m["layer"] for m in record["method_records"]["matrices"].values()}
    assert layers == ({0, 1, 2, 3} if model == "tiny_bart" else {0, 1})  # BART: decoder blocks after the encoder's


def test_same_seed_same_metrics_and_losses(tmp_path) -> None:
    overrides = tiny_overrides(tmp_path, "force=true", "trainer.max_steps=4")
    first, second = train(compose(overrides)), train(compose(overrides))
    assert first["metrics"] == second["metrics"]
    assert [h["train_loss"] for h in first["history"]] == [h["train_loss"] for h in second["history"]]
    other = train(compose([*overrides, "seed=7"]))
    assert [h["train_loss"] for h in other["history"]] != [h["train_loss"] for h in first["history"]]


def test_gradient_accumulation_counts_optimizer_steps(run_tiny) -> None:
    record = run_tiny("trainer.gradient_accumulation_steps=2", "trainer.batch_size=4", "trainer.max_steps=null",
                      "trainer.eval_every=null")
    # 48 examples / batch 4 = 12 micro-batches = 6 optimizer steps in the one epoch
    assert record["total_steps"] == 6 and record["history"][-1]["step"] == 6


def test_record_has_what_a_reader_needs(run_tiny, tmp_path) -> None:
    record = run_tiny()
    for key in ("config", "seed", "versions", "git", "parameters", "wall_time_s", "peak_memory_mb", "history",
                "metrics", "started_at", "finished_at", "world_size"):
        assert record[key] is not None, key
    assert record["versions"]["torch"] and record["peak_memory_mb"]["cpu_rss"] > 0
    on_disk = next((tmp_path / "results" / "test").rglob("run.json"))
    assert json.loads(on_disk.read_text())["status"] == "completed"
    assert (on_disk.parent / "metrics.jsonl").read_text().count("\n") >= 6


def test_record_reports_training_padding_with_and_without_grouping(tmp_path) -> None:
    """48 Rotten Tomatoes reviews of 8 to 64 tokens, in 6 batches of 8: grouping must pad less than the uniform
    shuffle, and the measured fraction of a whole epoch is the one computed from the lengths."""
    grouped = train(compose(tiny_overrides(tmp_path, "task.max_length=64", "trainer.group_by_length=true")))["cost"]
    assert grouped["group_by_length"] is True and grouped["examples_seen"] == 48
    assert grouped["padding_fraction"] == pytest.approx(grouped["padding_fraction_grouped"], abs=1e-6)
    assert grouped["padding_fraction"] < grouped["padding_fraction_ungrouped"]
    assert grouped["tokens_seen"] == round(grouped["batch_tokens_seen"] * (1 - grouped["padding_fraction"]))
    shuffled = train(compose(tiny_overrides(tmp_path, "task.max_length=64", "trainer.group_by_length=false")))["cost"]
    assert shuffled["group_by_length"] is False and "padding_fraction_grouped" not in shuffled
    assert shuffled["padding_fraction_ungrouped"] == grouped["padding_fraction_ungrouped"]
    assert shuffled["padding_fraction"] > grouped["padding_fraction"]
    assert shuffled["tokens_seen"] == grouped["tokens_seen"]  # the same examples, one epoch
