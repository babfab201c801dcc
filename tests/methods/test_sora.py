"""SoRA: gated forward, proximal gate optimizer (both threshold modes), L1, pruning, records, schedules."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

from peftbench.methods import get
from peftbench.methods.sora.config import SoRAConfig
from peftbench.methods.sora.layer import LoRALinear, SoRALinear, prune
from peftbench.methods.sora.method import SoRAMethod
from peftbench.methods.sora.optimizer import ProximalAdam, official_threshold, soft_threshold
from peftbench.methods.sora.sparsity import exp_linear, linear, log_linear, threshold_schedule
from peftbench.models import load_model_config, model_spec
from peftbench.recipes.options import SparsityOptions

# shared/README.md: measured behaviour of the authors' SparseAdamW at xi = 0.1.
GATES = [-0.25, -0.15, 0.05, 0.15, 0.2, 0.5]
OFFICIAL = [-0.15, 0.0, 0.0, 0.0, 0.1, 0.4]
EXACT = [-0.15, -0.05, 0.0, 0.05, 0.1, 0.4]

# tiny_bert's roles, with the head that peft's and the official code's BERT classifiers train (classifier only):
# these tests compare with those step by step. peftbench's own rule also trains BERT's pooler (models/roles.py).
BERT_SPEC = dataclasses.replace(model_spec(load_model_config("tiny_bert")), head_patterns=("classifier",))


def tiny_bert(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=2,
    )
    return BertForSequenceClassification(config)


def sora(model: nn.Module, **overrides) -> SoRAMethod:
    method = SoRAMethod(SoRAConfig(**overrides), BERT_SPEC)
    method.apply(model)
    return method


def batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "input_ids": torch.randint(1, 100, (16, 8), generator=g),
        "labels": torch.randint(0, 2, (16,), generator=g),
    }


# -- config --------------------------------------------------------------------------------------
def test_registered_with_authors_defaults():
    entry = get("sora")
    assert entry.config is SoRAConfig and entry.method is SoRAMethod
    c = SoRAConfig()
    assert (c.r, c.alpha, c.gate_init, c.gate_lr, c.threshold_mode) == (8, 16.0, "normal", None, "official")
    assert c.with_rank(4).r == 4 and c.with_rank(4).l1_weight == c.l1_weight


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"r": 0}, "r must be"),
        ({"target_types": ["qkv"]}, "target_types"),
        ({"gate_init": "zeros"}, "gate_init"),
        ({"threshold": -1.0}, ">= 0"),
        ({"threshold_mode": "soft"}, "threshold_mode"),
        ({"gate_lr": 0.0}, "gate_lr"),
    ],
)
def test_config_rejects_bad_values(kwargs, words):
    with pytest.raises(ValueError, match=words):
        SoRAConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"schedule": "cosine"}, "schedule must be"),
        ({"threshold_end": 0.0}, "must exceed recipe.threshold_start"),
        ({"schedule": "exp_linear", "threshold_start": 0.0}, "exp_linear needs"),
        ({"num_thresholds": 1}, "num_thresholds"),
        ({"stage_lr": "sometimes"}, "stage_lr must be"),
    ],
)
def test_sparsity_options_reject_bad_values(kwargs, words):
    with pytest.raises(ValueError, match=words):
        SparsityOptions(**kwargs)


# -- layer ---------------------------------------------------------------------------------------
def test_forward_matches_gated_formula_and_inits():
    torch.manual_seed(0)
    base = nn.Linear(6, 5)
    layer = SoRALinear(base, r=4, alpha=16, gate_init="normal")
    assert torch.equal(layer.lora_B, torch.zeros(5, 4)) and layer.scaling == 4.0
    bound = 1 / math.sqrt(6)  # kaiming_uniform_(a=sqrt(5)) on fan_in 6
    assert layer.lora_A.abs().max() <= bound and layer.lora_A.std() > 0
    x = torch.randn(3, 2, 6)
    assert torch.allclose(layer(x), base(x))  # B = 0: starts as the frozen layer
    with torch.no_grad():
        layer.lora_B.normal_()
    delta_w = layer.lora_B @ torch.diag(layer.gate) @ layer.lora_A  # (out, in): W_u diag(g) W_d
    assert torch.allclose(layer(x), base(x) + x @ delta_w.T * 4.0, atol=1e-5)
    assert torch.equal(SoRALinear(base, r=3, alpha=16, gate_init="ones").gate, torch.ones(3))


def test_prune_keeps_outputs_and_exact_size():
    torch.manual_seed(1)
    layer = SoRALinear(nn.Linear(8, 12), r=6, alpha=16)
    with torch.no_grad():
        layer.lora_B.normal_()
        layer.gate.copy_(torch.tensor([0.7, 0.0, -1.3, 0.0, 0.0, 0.2]))
    pruned = prune(layer)
    assert isinstance(pruned, LoRALinear) and pruned.r == 3 and pruned.r_initial == 6
    assert pruned.lora_A.numel() + pruned.lora_B.numel() == 3 * (8 + 12)
    x = torch.randn(5, 8)
    assert (pruned(x) - layer(x)).abs().max() <= 1e-6


# -- optimizer -----------------------------------------------------------------------------------
def test_threshold_functions_on_hand_vector():
    g = torch.tensor(GATES)
    assert torch.allclose(official_threshold(g, 0.1), torch.tensor(OFFICIAL), atol=1e-7)
    assert torch.allclose(soft_threshold(g, 0.1), torch.tensor(EXACT), atol=1e-7)


@pytest.mark.parametrize("mode, expected", [("official", OFFICIAL), ("exact", EXACT)])
def test_optimizer_thresholds_after_adam_step(mode, expected):
    gate = nn.Parameter(torch.tensor(GATES))
    gate.grad = torch.zeros_like(gate)  # zero gradient: the Adam step moves nothing, only the prox acts
    ProximalAdam([gate], lr=1e-3, threshold=0.1, mode=mode).step()
    assert torch.allclose(gate.detach(), torch.tensor(expected), atol=1e-7)


def test_optimizer_adam_step_then_lr_scaled_threshold():
    gate = nn.Parameter(torch.tensor([1.0, -1.0, 0.5]))
    gate.grad = torch.tensor([2.0, -3.0, 0.0])
    # First Adam step moves each parameter by lr * sign(grad) (up to eps); then xi * lr = 0.5 * 0.1 = 0.05.
    ProximalAdam([gate], lr=0.1, threshold=0.5, mode="exact", threshold_times_lr=True).step()
    assert torch.allclose(gate.detach(), torch.tensor([0.85, -0.85, 0.45]), atol=1e-5)


# -- method --------------------------------------------------------------------------------------
def test_apply_adapts_six_types_and_freezes_the_rest():
    model = tiny_bert()
    method = sora(model)
    adapted = {n for n, m in model.named_modules() if isinstance(m, SoRALinear)}
    assert len(adapted) == 2 * 6
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"{a}.{p}" for a in adapted for p in SoRALinear.adapter_names} | {
        "classifier.weight",
        "classifier.bias",
    }
    groups = method.param_groups(model, weight_decay=0.1)
    main = {id(p) for g in groups for p in g["params"]}
    gates = method.gates(model)
    assert len(gates) == 12 and not main & {id(g) for g in gates.values()}
    assert len(main) == 12 * 2 + 2


def test_target_types_subset():
    model = tiny_bert()
    sora(model, target_types=["query", "value"])
    names = sorted(n for n, m in model.named_modules() if isinstance(m, SoRALinear))
    assert len(names) == 4 and all(n.endswith(("query", "value")) for n in names)


def test_l1_is_one_mean_over_all_gates():
    model = tiny_bert()
    method = sora(model, l1_weight=2.0)
    gates = torch.cat([g.detach() for g in method.gates(model).values()])
    assert torch.allclose(method.extra_losses(model)["sora_l1"], 2.0 * gates.abs().sum() / gates.numel())
    assert sora(tiny_bert(), l1_weight=0.0).extra_losses(model) == {}


def test_gate_lr_defaults_to_main_lr_and_set_threshold_reaches_optimizer():
    model = tiny_bert()
    method = sora(model)
    (opt,) = method.extra_optimizers(model, lr=1e-3)
    assert opt.param_groups[0]["lr"] == 1e-3 and opt.threshold == 3e-4
    method.set_threshold(0.05, stage=2)
    assert opt.threshold == 0.05
    state = method.state_dict()
    other = sora(tiny_bert())
    other.load_state_dict(state)
    (opt2,) = other.extra_optimizers(model, lr=1e-3)
    assert (other.threshold, other.stage, opt2.threshold) == (0.05, 2, 0.05)
    assert sora(tiny_bert(), gate_lr=5e-2).extra_optimizers(model, lr=1e-3)[0].param_groups[0]["lr"] == 5e-2


def test_records_and_parameter_counts():
    model = tiny_bert()
    method = sora(model)
    modules = {n: m for n, m in model.named_modules() if isinstance(m, SoRALinear)}
    with torch.no_grad():
        for m in modules.values():
            m.gate[:3] = 0.0  # 5 of 8 ranks left everywhere
    record = method.on_evaluate(model, step=7)
    assert set(record["ranks"].values()) == {5}
    # attention matrices 32 -> 32, FFN 32 -> 64 and 64 -> 32: 2 layers * 5 * (4 * 64 + 2 * 96)
    assert record["nonzero_parameters"] == 2 * 5 * (4 * 64 + 2 * 96) == 4480
    out = method.on_train_end(model)
    assert out["rank_history"] == [{"step": 7, "ranks": record["ranks"]}]
    assert out["effective_parameters"] == 4480
    # Authors: all A, B (2 * 8 * 448 = 7168) minus 2 * hidden(32) per zeroed rank (3 * 12): FFN overcounted.
    assert out["authors_approx_parameters"] == 7168 - 2 * 32 * 36 == 4864
    ffn_in = "bert.encoder.layer.1.intermediate.dense"
    assert out["matrices"][ffn_in] == {"layer": 1, "type": "ffn_in", "in_features": 32, "out_features": 64}
    assert out["head_parameters"] == 32 * 2 + 2
    pruned = {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}
    assert len(pruned) == 12 and sum(m.lora_A.numel() + m.lora_B.numel() for m in pruned.values()) == 4480
    assert method.nonzero_parameters(model) == 4480  # still countable after pruning
    assert method.effective_parameters(model) == 4480 + 66  # base-class meaning: the head included


def test_apply_on_meta_device_for_the_planner():
    with torch.device("meta"):
        model = tiny_bert()
    sora(model)
    assert all(p.is_meta for p in model.parameters())


# -- smoke ---------------------------------------------------------------------------------------
def test_smoke_loss_falls_gates_zero_and_pruning_preserves_outputs():
    model = tiny_bert()
    method = sora(model, threshold=0.05, l1_weight=0.1)  # xi far above the authors' 3e-4
    main = torch.optim.AdamW(method.param_groups(model, weight_decay=0.0), lr=1e-2)
    optimizers = [main, *method.extra_optimizers(model, lr=1e-2)]
    data = batch()
    losses = []
    for _ in range(20):
        loss = model(**data).loss
        losses.append(loss.item())
        loss = loss + sum(method.extra_losses(model).values())
        loss.backward()
        for opt in optimizers:
            opt.step()
        for opt in optimizers:
            opt.zero_grad()
    assert losses[-1] < 0.5 * losses[0]
    ranks = method.on_evaluate(model, step=20)["ranks"]
    assert 0 < sum(ranks.values()) < 12 * 8  # some gates exactly zero, not all
    model.eval()
    with torch.no_grad():
        before = model(input_ids=data["input_ids"]).logits
        method.on_train_end(model)
        after = model(input_ids=data["input_ids"]).logits
    assert (before - after).abs().max() <= 1e-6
    assert not any(isinstance(m, SoRALinear) for m in model.modules())


# -- schedules -----------------------------------------------------------------------------------
def test_schedules():
    # The released RTE run: xi 0 -> 7e-4 in 7 values (dense stage at 0, then 6 stages).
    assert linear(0.0, 7e-4, 7) == pytest.approx([i * 1e-4 * 7 / 6 for i in range(7)])
    assert exp_linear(1e-4, 1e-2, 3) == pytest.approx([1e-4, 1e-3, 1e-2])
    values = log_linear(0.0, 1.0, 3)
    assert values == pytest.approx([0.0, math.log((1 + math.e) / 2), 1.0])
    assert threshold_schedule("linear", 1.0, 2.0, 1) == [1.0]
    with pytest.raises(ValueError, match="start and end > 0"):
        exp_linear(0.0, 1e-3, 4)
    with pytest.raises(ValueError, match="unknown"):
        threshold_schedule("cosine", 0.0, 1.0, 3)
