"""AdaLoRA: SVD layer, importance EMAs and triplet scores, budget schedule, masking, orth regulariser,
config, records, resume, a faithfulness check against peft's AdaLoRA and a CPU smoke run."""

from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from transformers import BertConfig, BertForSequenceClassification  # noqa: E402

from peftbench.methods import ModelSpec, count_parameters, get  # noqa: E402
from peftbench.methods.adalora.allocator import BudgetSchedule, RankAllocator  # noqa: E402
from peftbench.methods.adalora.config import AdaLoRAConfig  # noqa: E402
from peftbench.methods.adalora.hyperparameters import GLUE, method_overrides  # noqa: E402
from peftbench.methods.adalora.layer import SVDLinear  # noqa: E402
from peftbench.methods.adalora.method import AdaLoRAMethod, adapted_layers, orthogonal_regulariser  # noqa: E402
from peftbench.models import load_model_config, model_spec  # noqa: E402

# tiny_bert's roles, with the head that peft's and the official code's BERT classifiers train (classifier only):
# these tests compare with those step by step. peftbench's own rule also trains BERT's pooler (models/roles.py).
BERT_SPEC = dataclasses.replace(model_spec(load_model_config("tiny_bert")), head_patterns=("classifier",))
# The faithfulness setting of shared/README.md: init_r 6 -> target 2, t_i 5, t_f 10, ΔT 3.
FAITHFUL = dict(target_rank=2, init_rank=6, t_i=5, t_f=10, delta_t=3, lora_alpha=32.0, orth_reg_weight=0.1)
# The timing peft 0.21.2 has when driven with steps 1..T (peftbench's behaviour before the timing switches).
PEFT_TIMING = dict(step_origin="one_based", final_phase="peft")
PEFT_ARITHMETIC = dict(update_rounding="official")  # the official operation order, for bit-identical comparisons


def tiny_bert(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=2,
    )  # fmt: skip
    return BertForSequenceClassification(config)


def batch(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"input_ids": torch.randint(1, 100, (8, 8), generator=g), "labels": torch.randint(0, 2, (8,), generator=g)}


def adalora(model: nn.Module, **overrides) -> AdaLoRAMethod:
    method = AdaLoRAMethod(AdaLoRAConfig(**overrides), BERT_SPEC)
    method.apply(model)
    return method


def train_steps(model, method, optimizer, steps: range, data_seed=lambda s: s) -> list[float]:
    """The loop's hook order: loss + extra losses, backward, step, after_optimizer_step, zero_grad."""
    losses = []
    for step in steps:
        out = model(**batch(data_seed(step)))
        loss = out.loss + sum(method.extra_losses(model).values())
        loss.backward()
        optimizer.step()
        method.after_optimizer_step(model, step)
        optimizer.zero_grad()
        losses.append(out.loss.item())
    return losses


def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


# --- layer ------------------------------------------------------------------------------------------
def test_layer_init_matches_official_and_starts_as_identity():
    torch.manual_seed(0)
    base = nn.Linear(64, 48)
    layer = SVDLinear(base, rank=8, alpha=32.0)
    assert torch.count_nonzero(layer.lora_E) == 0  # Λ = 0: ΔW = 0 at step 0
    for p in (layer.lora_A, layer.lora_B):
        assert abs(p.mean().item()) < 0.005 and 0.017 < p.std().item() < 0.023  # N(0, 0.02²)
    assert layer.lora_A.shape == (8, 64) and layer.lora_E.shape == (8, 1) and layer.lora_B.shape == (48, 8)
    x = torch.randn(3, 64)
    assert torch.equal(layer(x), base(x))
    assert not base.weight.requires_grad and "ranknum" not in dict(layer.named_parameters())


def test_layer_forward_is_p_lambda_q_scaled_by_alpha_over_initial_rank():
    base = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        base.weight.zero_()
    layer = SVDLinear(base, rank=2, alpha=4.0)
    with torch.no_grad():
        layer.lora_A.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))  # Q
        layer.lora_E.copy_(torch.tensor([[3.0], [5.0]]))  # Λ
        layer.lora_B.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))  # P
    scale = 4.0 / (2 + 1e-5)
    expected = torch.tensor([[3.0, 0.0, 0.0], [0.0, 10.0, 0.0]]) * scale
    torch.testing.assert_close(layer.delta_weight(), expected)
    x = torch.tensor([[1.0, 1.0, 1.0]])
    torch.testing.assert_close(layer(x), x @ expected.T)
    assert SVDLinear(nn.Linear(3, 2), rank=2, alpha=0).scaling == 2.0  # α <= 0 falls back to r


def test_fused_update_is_the_official_one_within_rounding():
    """``update_rounding="fused"`` (one addmm) against the official order: outputs and every gradient agree to
    float rounding, and the official order really is what ``fused=False`` computes, bit for bit."""
    torch.manual_seed(0)
    base = nn.Linear(24, 16)
    official, fused = SVDLinear(base, rank=6, alpha=32.0), SVDLinear(base, rank=6, alpha=32.0, fused=True)
    values = (torch.randn(6, 24), torch.randn(6, 1), torch.randn(16, 6))  # Q, Λ, P
    with torch.no_grad():
        for layer in (official, fused):
            for name, value in zip(SVDLinear.adapter_names, values, strict=True):
                getattr(layer, name).copy_(value)
    x = torch.randn(2, 5, 24, requires_grad=True)
    expected = official(x)
    scale = 32.0 / (torch.tensor([6.0]) + 1e-5)
    assert torch.equal(expected, base(x) + x @ (official.lora_A * official.lora_E).T @ official.lora_B.T * 32.0 / (
        torch.tensor([6.0]) + 1e-5))  # the official SVDLinear's expression
    torch.testing.assert_close(fused(x), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fused(x), base(x) + x @ fused.delta_weight().T, rtol=1e-5, atol=1e-5)
    for layer in (official, fused):
        layer.zero_grad()
        layer(x).square().sum().backward()
    for name in SVDLinear.adapter_names:
        torch.testing.assert_close(getattr(fused, name).grad, getattr(official, name).grad, rtol=1e-5, atol=1e-5)
    assert abs(fused.fused_scaling - scale.item()) < 1e-6 * scale.item()
    assert AdaLoRAConfig().update_rounding == "fused"


# --- schedule -----------------------------------------------------------------------------------------
def test_budget_schedule_follows_official_cubic():
    s = BudgetSchedule(b0=72, bT=24, t_i=5, t_f=10, delta_t=3, total_steps=30)
    assert s.budget(1) == 72 and s.budget(5) == 72  # warm-up, including t_i itself
    assert s.budget(10) == int(24 + 48 * (1 - 5 / 15) ** 3) == 38  # mid-way: numerator t - t_i
    assert s.budget(20) == 24  # T - t_f
    assert s.budget(21) == 24 and s.budget(30) == 24
    budgets = [s.budget(t) for t in range(1, 31)]
    assert budgets == sorted(budgets, reverse=True) and max(budgets) == 72
    # The paper's printed numerator t - t_i - t_f would start above b(0): (1 + 10/15)³ > 1.
    assert 24 + 48 * (1 - (6 - 5 - 10) / 15) ** 3 > 72
    assert [t for t in range(1, 31) if s.is_mask_step(t, "peft")] == [6, 9, 12, 15, 18, 20]
    assert s.fixing_step("peft") == 20
    # Official: ΔT = 3 does not divide T - t_f = 20, so the pattern is first fixed at 21.
    assert [t for t in range(1, 31) if s.is_mask_step(t, "official")] == [6, 9, 12, 15, 18, 21]
    assert s.fixing_step("official") == 21
    s21 = dataclasses.replace(s, total_steps=31)  # T - t_f = 21 = 7 ΔT: both fix at T - t_f
    assert s21.fixing_step("official") == s21.fixing_step("peft") == 21
    assert not s.is_final(19) and s.is_final(20) and s.is_final(30)
    with pytest.raises(ValueError, match="final_phase"):
        s.fixing_step("late")


# --- importance -------------------------------------------------------------------------------------
def test_importance_emas_and_triplet_score_by_hand():
    layer = SVDLinear(nn.Linear(3, 4), rank=2, alpha=1.0)
    alloc = RankAllocator({"m": layer}, BudgetSchedule(4, 2, 0, 0, 1, 10), beta1=0.8, beta2=0.6)
    g = torch.Generator().manual_seed(1)
    params = {n: getattr(layer, n) for n in ("lora_A", "lora_E", "lora_B")}
    ema_i = {n: torch.zeros_like(p) for n, p in params.items()}
    ema_u = {n: torch.zeros_like(p) for n, p in params.items()}
    for _ in range(2):
        for n, p in params.items():
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g))
            p.grad = torch.randn(p.shape, generator=g)
            i = (p.detach() * p.grad).abs()  # Eq. 9
            ema_i[n] = 0.8 * ema_i[n] + 0.2 * i  # Eq. 10, sensitivity
            ema_u[n] = 0.6 * ema_u[n] + 0.4 * (i - ema_i[n]).abs()  # Eq. 10, with the fresh Ī
        alloc.update_importance()
    for n in params:
        torch.testing.assert_close(alloc.exp_avg_ipt[f"m.{n}"], ema_i[n])
        torch.testing.assert_close(alloc.exp_avg_unc[f"m.{n}"], ema_u[n])
    s = {n: ema_i[n] * ema_u[n] for n in params}  # Eq. 11
    for k in range(2):  # Eq. 8: s(λ_k) + mean over column k of P + mean over row k of Q
        expected = s["lora_E"][k, 0] + s["lora_B"][:, k].mean() + s["lora_A"][k, :].mean()
        torch.testing.assert_close(alloc.triplet_scores()["m"][k], expected)


def test_masking_is_global_and_values_return_until_the_final_phase():
    layers = {name: SVDLinear(nn.Linear(4, 4), rank=3, alpha=1.0) for name in ("a", "b")}
    schedule = BudgetSchedule(b0=6, bT=2, t_i=1, t_f=2, delta_t=2, total_steps=8)
    alloc = RankAllocator(layers, schedule, 0.85, 0.85, **PEFT_TIMING)
    # Scores for a: [5, 1, 4], b: [0.5, 3, 2] through Λ only (P, Q scores zero).
    for name, values in (("a", [5.0, 1.0, 4.0]), ("b", [0.5, 3.0, 2.0])):
        for p in ("lora_A", "lora_B"):
            alloc.exp_avg_ipt[f"{name}.{p}"] = torch.zeros_like(getattr(layers[name], p))
            alloc.exp_avg_unc[f"{name}.{p}"] = torch.zeros_like(getattr(layers[name], p))
        alloc.exp_avg_ipt[f"{name}.lora_E"] = torch.tensor(values).view(-1, 1)
        alloc.exp_avg_unc[f"{name}.lora_E"] = torch.ones(3, 1)
    masks = alloc.compute_masks(budget=3)
    assert masks["a"].tolist() == [True, False, True] and masks["b"].tolist() == [False, True, False]
    # Drive the schedule by hand without score updates: step 2 masks (budget phase), step 3 does not.
    alloc.update_importance = lambda: None
    for layer in layers.values():
        nn.init.ones_(layer.lora_E)
    alloc.step(2)
    assert alloc.history[-1]["step"] == 2 and alloc.history[-1]["budget"] == schedule.budget(2)
    zeroed = {n: (layer.lora_E == 0).view(-1).tolist() for n, layer in layers.items()}
    assert sum(sum(z) for z in zeroed.values()) == 6 - schedule.budget(2)
    for layer in layers.values():
        nn.init.ones_(layer.lora_E)  # the optimizer moves masked values again
    alloc.step(3)
    assert all(torch.all(layer.lora_E == 1) for layer in layers.values())  # not a mask step: they stay back
    alloc.step(6)  # T - t_f: final pattern, budget b(T)
    assert alloc.ranks() == {"a": 2, "b": 0}  # global top-2: scores 5 and 4, both in a
    assert alloc.history[-1] == {"step": 6, "schedule_step": 6, "budget": 2, "ranks": {"a": 2, "b": 0}}
    for layer in layers.values():
        nn.init.ones_(layer.lora_E)
    alloc.step(7)  # final phase: the frozen pattern is re-applied every step
    assert [(layers[n].lora_E != 0).sum().item() for n in "ab"] == [2, 0]
    assert len(alloc.history) == 2


# --- orthogonal regulariser ---------------------------------------------------------------------------
def test_orth_reg_is_official_mean_of_frobenius_norms():
    torch.manual_seed(0)
    layers = [SVDLinear(nn.Linear(5, 4), rank=3, alpha=1.0) for _ in range(2)]
    expected = 0.0
    for layer in layers:
        a, b = layer.lora_A.detach(), layer.lora_B.detach()
        expected += torch.linalg.matrix_norm(a @ a.T - torch.eye(3)) + torch.linalg.matrix_norm(b.T @ b - torch.eye(3))
    torch.testing.assert_close(orthogonal_regulariser(layers), expected / 4)  # not squared; mean over 2n

    model = tiny_bert()
    method = adalora(model, **dict(FAITHFUL, orth_reg_weight=0.3))
    reg = method.extra_losses(model)["orth_reg"]
    torch.testing.assert_close(reg, 0.3 * orthogonal_regulariser(list(adapted_layers(model).values())))
    assert reg.requires_grad
    assert adalora(tiny_bert(), **dict(FAITHFUL, orth_reg_weight=0.0)).extra_losses(model) == {}


# --- config -------------------------------------------------------------------------------------------
def test_config_budget_terms_with_rank_and_checks():
    assert [AdaLoRAConfig(target_rank=r).initial_rank for r in (1, 2, 4, 8)] == [2, 3, 6, 12]
    cfg = AdaLoRAConfig().with_rank(8)
    assert (cfg.target_rank, cfg.initial_rank, cfg.init_rank) == (8, 12, None)
    assert AdaLoRAConfig(init_rank=3).with_rank(1).initial_rank == 3  # an explicit init_rank is kept
    assert AdaLoRAConfig(orth_reg_weight=0.0).orth_reg_weight == 0.0  # γ = 0 is allowed
    assert (AdaLoRAConfig().step_origin, AdaLoRAConfig().final_phase) == ("official", "official")
    for bad, hint in (
        (dict(target_rank=4, init_rank=2), "init_rank"),
        (dict(beta1=1.0), "beta1"),
        (dict(orth_reg_weight=-0.1), "orth_reg_weight"),
        (dict(delta_t=0), "delta_t"),
        (dict(target_types=("query", "gate")), "target_types"),
        (dict(step_origin="zero_based"), "step_origin"),
        (dict(final_phase="late"), "final_phase"),
        (dict(update_rounding="exact"), "update_rounding"),
    ):
        with pytest.raises(ValueError, match=hint):
            AdaLoRAConfig(**bad)
    with pytest.raises(ValueError, match="init_rank"):
        AdaLoRAConfig(init_rank=3).with_rank(4)
    model = tiny_bert()
    method = adalora(model, t_i=5, t_f=10)
    with pytest.raises(ValueError, match=r"t_i=5 \+ t_f=10 >= T=15"):
        method.on_train_start(model, 15)


def test_yaml_lists_every_field_with_the_dataclass_defaults():
    path = Path(__file__).resolve().parents[2] / "conf" / "method" / "adalora.yaml"
    text = path.read_text()
    values = yaml.safe_load(text)
    assert next(iter(values)) == "name" and values.pop("name") == "adalora"
    fields = {f.name: f for f in dataclasses.fields(AdaLoRAConfig)}
    assert list(values) == list(fields)
    defaults = AdaLoRAConfig()
    assert all(values[k] == (list(v) if isinstance(v := getattr(defaults, k), tuple) else v) for k in values)
    assert all("#" in line for line in text.splitlines() if line and not line.startswith("#"))
    assert all(f.metadata.get("help") for f in fields.values())
    assert get("adalora").config is AdaLoRAConfig and get("adalora").method is AdaLoRAMethod


def test_table8_hyperparameters_and_overrides():
    assert set(GLUE) == {"cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte"}
    assert (GLUE["cola"].orth_reg_weight, GLUE["cola"].script_orth_reg_weight) == (0.5, 0.1)
    assert (GLUE["stsb"].orth_reg_weight, GLUE["stsb"].script_orth_reg_weight) == (0.1, 0.3)
    assert (GLUE["qnli"].lr, GLUE["qnli"].script_lr, GLUE["qqp"].script_lr) == (1.2e-3, 5e-4, 8e-4)
    assert (GLUE["mnli"].t_i, GLUE["mnli"].t_f, GLUE["mnli"].delta_t) == (8000, 50000, 100)
    for task in GLUE:
        for source in ("paper", "script"):
            AdaLoRAConfig(**method_overrides(task, source))  # every row is a valid config
    assert method_overrides("mnli", "script")["init_rank"] == 3


# --- injection and records ----------------------------------------------------------------------------
def test_apply_wraps_targets_and_freezes_all_but_adapters_and_head():
    model = tiny_bert()
    method = adalora(model, **FAITHFUL)
    layers = adapted_layers(model)
    assert len(layers) == 12 and all(layer.rank == 6 for layer in layers.values())
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names == {f"{m}.{a}" for m in layers for a in SVDLinear.adapter_names} | {
        "classifier.weight",
        "classifier.bias",
    }
    counts = count_parameters(model, BERT_SPEC)
    assert counts["adapter"] == sum(6 * (lay.in_features + lay.out_features + 1) for lay in layers.values())
    assert method.effective_parameters(model) == counts["trainable"]  # before any masking: initial rank
    only_qv = tiny_bert()
    adalora(only_qv, **dict(FAITHFUL, target_types=("query", "value")))
    assert sorted(n.rsplit(".", 1)[1] for n in adapted_layers(only_qv)) == ["query"] * 2 + ["value"] * 2
    no_match = ModelSpec(name="x", targets={"query": r"nothing\.here"}, head_patterns=("classifier",))
    with pytest.raises(ValueError, match="matches the matrix types"):
        AdaLoRAMethod(AdaLoRAConfig(target_types=("query",)), no_match).apply(tiny_bert())
    assert method.on_evaluate(model, 1) == {}  # before on_train_start
    method.on_train_start(model, 30)
    assert method.on_evaluate(model, 1) == {"adalora_budget": 72, "adalora_total_rank": 72}


# --- faithfulness against peft ------------------------------------------------------------------------
def peft_twin(base: nn.Module, total_steps: int, orth_reg_weight: float, task_type: str | None = "SEQ_CLS"):
    """peft's AdaLoRA on the same backbone. SEQ_CLS keeps the classifier trainable (a copy in a
    ModulesToSaveWrapper, same initial weights) and routes forward through AdaLoraModel.forward."""
    from peft import AdaLoraConfig, get_peft_model

    config = AdaLoraConfig(
        task_type=task_type,
        init_r=FAITHFUL["init_rank"], target_r=FAITHFUL["target_rank"], tinit=FAITHFUL["t_i"],
        tfinal=FAITHFUL["t_f"], deltaT=FAITHFUL["delta_t"], lora_alpha=FAITHFUL["lora_alpha"],
        lora_dropout=0.0, beta1=0.85, beta2=0.85, orth_reg_weight=orth_reg_weight, total_step=total_steps,
        target_modules=BERT_SPEC.target_regex(),
    )  # fmt: skip
    model = get_peft_model(base, config)
    if task_type is None:
        model.base_model.model.classifier.requires_grad_(True)
    return model


def copy_adapters_from_peft(peft_model, model) -> None:
    with torch.no_grad():
        for name, layer in adapted_layers(model).items():
            twin = peft_model.base_model.model.get_submodule(name)
            for attr in SVDLinear.adapter_names:
                getattr(layer, attr).copy_(getattr(twin, attr)["default"])


@pytest.mark.parametrize("total_steps", [30, 31])  # T - t_f = 20 is not a multiple of ΔT = 3; 21 is
def test_masks_identical_to_peft_at_every_step(total_steps):
    base = tiny_bert(seed=3)
    theirs = peft_twin(copy.deepcopy(base), total_steps, FAITHFUL["orth_reg_weight"])
    ours_model = copy.deepcopy(base)
    ours = adalora(ours_model, **FAITHFUL, **PEFT_TIMING, **PEFT_ARITHMETIC)
    copy_adapters_from_peft(theirs, ours_model)
    ours.on_train_start(ours_model, total_steps)
    opt_theirs = torch.optim.AdamW(trainable(theirs), lr=5e-3)
    opt_ours = torch.optim.AdamW(trainable(ours_model), lr=5e-3)
    assert sum(p.numel() for p in trainable(theirs)) == sum(p.numel() for p in trainable(ours_model))
    twins = {name: theirs.base_model.model.get_submodule(name) for name in adapted_layers(ours_model)}
    mask_steps_seen = 0
    for step in range(1, total_steps + 1):
        out = theirs(**batch(step))  # peft adds γ·R to outputs.loss inside forward
        out.loss.backward()
        opt_theirs.step()
        theirs.base_model.update_and_allocate(step)
        opt_theirs.zero_grad()
        train_steps(ours_model, ours, opt_ours, range(step, step + 1))
        for name, layer in adapted_layers(ours_model).items():
            twin_e = twins[name].lora_E["default"]
            assert torch.equal(layer.lora_E == 0, twin_e == 0), f"mask differs at step {step} in {name}"
            for attr in SVDLinear.adapter_names:  # same operation order: bit-identical, not just close
                assert torch.equal(getattr(layer, attr), getattr(twins[name], attr)["default"]), (step, name)
        if ours.allocator.history and ours.allocator.history[-1]["step"] == step:
            mask_steps_seen += 1
            pattern = theirs.peft_config["default"].rank_pattern
            for name in twins:
                assert ours.allocator.masks[name].tolist() == pattern[f"{name}.lora_E.default"]
    assert mask_steps_seen == len(ours.allocator.history) >= 5
    final = ours.on_train_end(ours_model)["final_ranks"]
    assert sum(final.values()) <= 2 * 12
    assert len(set(final.values())) > 1  # the budget really was reallocated between matrices


def test_peft_adds_the_orth_reg_inside_forward_and_accepts_zero():
    base = tiny_bert(seed=3)
    theirs = peft_twin(copy.deepcopy(base), 30, 0.1)
    ours_model = copy.deepcopy(base)
    ours = adalora(ours_model, **FAITHFUL)
    copy_adapters_from_peft(theirs, ours_model)
    data = batch(0)
    with torch.no_grad():
        task_loss = ours_model(**data).loss
        peft_loss = theirs(**data).loss
        reg = ours.extra_losses(ours_model)["orth_reg"]
    torch.testing.assert_close(peft_loss, task_loss + reg)  # peft: hidden in outputs.loss; here: returned
    assert reg.item() > 0
    zero = peft_twin(copy.deepcopy(base), 30, 0.0)  # peft 0.21.2 accepts γ = 0 (raised before peft#3438)
    no_task = peft_twin(copy.deepcopy(base), 30, 0.1, task_type=None)
    with torch.no_grad():
        torch.testing.assert_close(zero(**data).loss, task_loss)
        # Without a task_type, PeftModel.forward calls the backbone directly: the regulariser is silently
        # dropped even with γ = 0.1.
        torch.testing.assert_close(no_task(**data).loss, task_loss)


# --- smoke, records, resume ---------------------------------------------------------------------------
@pytest.mark.parametrize("gamma", [0.1, 0.0])
def test_smoke_loss_falls_and_final_ranks_respect_the_budget(gamma):
    model = tiny_bert(seed=1)
    method = adalora(model, target_rank=1, init_rank=3, t_i=2, t_f=3, delta_t=1, orth_reg_weight=gamma)
    method.on_train_start(model, 10)
    optimizer = torch.optim.AdamW(method.param_groups(model, 0.0), lr=1e-2)
    data = batch(0)
    with torch.no_grad():
        before = model(**data).loss.item()
    losses = train_steps(model, method, optimizer, range(1, 11), data_seed=lambda s: 0)
    with torch.no_grad():
        after = model(**data).loss.item()
    assert after < before and losses[-1] < losses[0]
    records = method.on_train_end(model)
    assert sum(records["final_ranks"].values()) <= 12  # b(T) = 1 × 12 matrices
    # Default step_origin="official": schedule step s = t - 1, so mask steps s = 3..7 (t_i < s <= T - t_f)
    # happen at loop steps t = 4..8.
    assert [h["schedule_step"] for h in records["rank_history"]] == [3, 4, 5, 6, 7]
    assert [h["step"] for h in records["rank_history"]] == [4, 5, 6, 7, 8]
    assert all(sum(h["ranks"].values()) <= h["budget"] for h in records["rank_history"])
    assert records["budget_schedule"] == dict(b0=36, bT=12, t_i=2, t_f=3, delta_t=1, total_steps=10)
    assert "mask steps" in records["rank_note"]
    info = records["matrices"]["bert.encoder.layer.1.intermediate.dense"]
    assert info == {"layer": 1, "type": "ffn_in", "in_features": 32, "out_features": 64}
    head = sum(p.numel() for n, p in model.named_parameters() if "classifier" in n)
    expected = sum(
        r * (info["in_features"] + info["out_features"] + 1)
        for r, info in ((records["final_ranks"][n], records["matrices"][n]) for n in records["matrices"])
    )
    assert method.effective_parameters(model) == expected + head
    for name, layer in adapted_layers(model).items():  # frozen pattern applied after the last step
        assert (layer.lora_E != 0).sum().item() <= records["final_ranks"][name]


def test_state_dict_resume_is_bit_identical():
    settings = dict(FAITHFUL, t_i=2, t_f=4, delta_t=2)

    def fresh():
        model = tiny_bert(seed=2)
        torch.manual_seed(5)
        method = adalora(model, **settings)
        return model, method, torch.optim.AdamW(trainable(model), lr=5e-3)

    model_a, method_a, opt_a = fresh()
    method_a.on_train_start(model_a, 14)
    train_steps(model_a, method_a, opt_a, range(1, 15))

    model_b, method_b, opt_b = fresh()
    method_b.on_train_start(model_b, 14)
    train_steps(model_b, method_b, opt_b, range(1, 8))
    saved = copy.deepcopy((model_b.state_dict(), opt_b.state_dict(), method_b.state_dict()))
    model_c, method_c, opt_c = fresh()
    model_c.load_state_dict(saved[0])
    opt_c.load_state_dict(saved[1])
    method_c.load_state_dict(saved[2])  # before on_train_start: applied once the schedule is known
    method_c.on_train_start(model_c, 14)
    train_steps(model_c, method_c, opt_c, range(8, 15))

    for (name, p), q in zip(model_a.named_parameters(), model_c.parameters(), strict=True):
        assert torch.equal(p, q), name
    assert method_a.on_train_end(model_a) == method_c.on_train_end(model_c)
    other_run = dict(saved[2]["allocator"], schedule=dict(saved[2]["allocator"]["schedule"], total_steps=99))
    with pytest.raises(ValueError, match="schedule"):
        method_c.load_state_dict({"allocator": other_run})


def test_resume_keeps_the_timing_and_refuses_other_switches():
    def started(**timing):
        model = tiny_bert(seed=2)
        method = adalora(model, **dict(FAITHFUL, t_i=2, t_f=4, delta_t=2), **timing)
        method.on_train_start(model, 14)
        return model, method

    model, method = started(**PEFT_TIMING)
    train_steps(model, method, torch.optim.AdamW(trainable(model), lr=5e-3), range(1, 4))
    saved = copy.deepcopy(method.state_dict())
    assert saved["allocator"]["timing"] == PEFT_TIMING
    model_b, method_b = started()  # official defaults
    method_b.load_state_dict(saved)
    with pytest.raises(ValueError, match="step_origin"):
        method_b.after_optimizer_step(model_b, 4)
    legacy = copy.deepcopy(saved)
    del legacy["allocator"]["timing"]  # checkpoints from before the switches ran one-based with PEFT's phase
    model_c, method_c = started(**PEFT_TIMING)
    method_c.load_state_dict(legacy)
    method_c.after_optimizer_step(model_c, 4)
    assert method_c.allocator.timing == PEFT_TIMING
