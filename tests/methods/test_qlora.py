"""QLoRA: LoRA on the real MiniLM loaded in 4-bit NF4 (bitsandbytes on CPU). bitsandbytes and the MiniLM package
are dependencies (pyproject.toml, scripts/setup.sh): nothing here is skipped when they are missing, it fails.

What is checked: the config refuses qlora without ``model.quantization=nf4`` and 4-bit loading without
bitsandbytes, with one line before weights load; the backbone is 4-bit except the heads and the pooler; counts
report logical sizes (the 4-bit total equals the full-precision one, and the planner's meta count equals the real
4-bit run's); train -> evaluate -> train works on AVX512-BF16 CPUs."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys

import bitsandbytes  # noqa: F401 - a dependency: its absence must fail, not skip
import pytest
import torch
from support import compose, tiny_overrides

from peftbench import methods
from peftbench.budget import count_on_meta
from peftbench.config import ConfigError, validate
from peftbench.methods.qlora.method import QLoRAMethod
from peftbench.models import build_model, load_model_config, model_spec, quantized_modules

QLORA = ("method=qlora", "model=minilm", "model.quantization=nf4", "task=rotten_tomatoes", "logger=none",
         "task.max_train_samples=32", "task.max_eval_samples=16", "task.max_length=32")


def qlora_run(tmp_path, *extra: str):
    return validate(compose(tiny_overrides(tmp_path, *QLORA, *extra)))


@pytest.fixture(scope="module")
def minilm_4bit():
    torch.manual_seed(0)
    return build_model(dataclasses.replace(load_model_config("minilm"), quantization="nf4"), 2)


def test_qlora_needs_an_nf4_backbone(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"method=qlora trains on a nf4 backbone: add model.quantization=nf4"):
        validate(compose(tiny_overrides(tmp_path, "method=qlora", "model=minilm")))
    with pytest.raises(ConfigError, match="a random-init model has none"):
        validate(compose(tiny_overrides(tmp_path, "method=qlora", "model.quantization=nf4")))  # tiny_bert
    validate(compose(tiny_overrides(tmp_path, "method=lora", "model=minilm", "model.quantization=nf4")))


def test_cli_fails_with_one_line_before_weights_load(tmp_path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PEFTBENCH_ROOT": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "peftbench", "method=qlora", "model=minilm"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "add model.quantization=nf4" in result.stderr


def test_missing_bitsandbytes_is_one_config_line(tmp_path, monkeypatch) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "bitsandbytes" else find_spec(name, *a))
    with pytest.raises(ConfigError, match=r"model.quantization=nf4 needs bitsandbytes, which is not installed"):
        qlora_run(tmp_path)


def test_backbone_is_4bit_and_the_head_and_pooler_are_not(minilm_4bit) -> None:
    quantized = quantized_modules(minilm_4bit)
    assert len(quantized) == 6 * 6  # six matrix types in six blocks
    assert not any("pooler" in name or "classifier" in name for name in quantized)
    assert all(layer.weight.quant_state.nested for layer in quantized.values())  # double quantisation
    assert all(layer.weight.quant_state.quant_type == "nf4" for layer in quantized.values())
    assert all(layer.compute_dtype == torch.bfloat16 for layer in quantized.values())
    assert all(not layer.support_avx512bf16_for_cpu for layer in quantized.values())
    assert minilm_4bit.classifier.weight.dtype == torch.float32


def test_4bit_counts_report_the_true_backbone_size(minilm_4bit) -> None:
    spec = model_spec(load_model_config("minilm"))
    full = build_model(load_model_config("minilm"), 2)
    packed = sum(p.numel() for p in minilm_4bit.parameters())
    assert packed < sum(p.numel() for p in full.parameters())  # two 4-bit values a byte: numel() would undercount
    assert methods.count_parameters(minilm_4bit, spec)["total"] == methods.count_parameters(full, spec)["total"]


def test_planner_counts_equal_the_real_4bit_run(tmp_path) -> None:
    run = qlora_run(tmp_path)
    spec = model_spec(run.model)
    planned = count_on_meta(run)
    model = QLoRAMethod(run.method, spec).apply(build_model(run.model, 2))
    counts = methods.count_parameters(model, spec)
    assert {k: planned[k] for k in counts} == counts
    assert counts["adapter"] == 24 * 8 * (384 + 384) + 12 * 8 * (384 + 1536)  # r 8 on the six matrix types
    assert counts["total"] == 22_713_986 + counts["adapter"]
    lora = validate(compose(tiny_overrides(tmp_path, "method=lora", "model=minilm")))
    assert {k: count_on_meta(lora)[k] for k in counts} == counts


def test_apply_refuses_a_full_precision_backbone() -> None:
    model_cfg = load_model_config("minilm")
    config = methods.get("qlora").config()
    with pytest.raises(ValueError, match="method qlora needs a 4-bit backbone"):
        QLoRAMethod(config, model_spec(model_cfg)).apply(build_model(model_cfg, 2))


def test_train_evaluate_train_on_4bit_minilm(tmp_path) -> None:
    """trainer=tiny: 6 steps with an evaluation at step 3. Without turning off bitsandbytes' AVX512-BF16 repacking,
    the evaluation repacks the 4-bit weights and step 4 fails (`a view of a leaf Variable ...`)."""
    from peftbench.train import train

    record = train(qlora_run(tmp_path))
    assert record["status"] == "completed"
    assert [h["step"] for h in record["history"]] == [3, 6]
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in record["history"])
    # head: pooler (384 x 384 + 384) + classifier (770), in full precision
    assert record["parameters"]["adapter"] == 331_776 and record["parameters"]["head"] == 147_840 + 770
    assert record["parameters"]["total"] == 22_713_986 + 331_776
    assert record["model"] == "minilm" and record["config"]["model"]["quantization"] == "nf4"


def test_plan_counts_qlora_at_nf4_and_leaves_it_out_on_random_init_models(capsys) -> None:
    from peftbench.planner import run_plan

    run_plan(["model=minilm", "budget=r8", "method=lora,qlora"])
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()
            if line.startswith(("lora ", "qlora "))}
    assert rows["qlora"] == rows["lora"] and rows["lora"][1:3] == ["r=8", "rank"]
    run_plan(["model=tiny_bert", "budget=r8"])  # every registered method
    out = capsys.readouterr().out
    assert "not planned: qlora: model.quantization: quantises pretrained weights" in out
    assert "\nlora " in out and "\nqlora " not in out
