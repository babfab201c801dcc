"""AdaLoRA timing against the official code (QingruZhang/AdaLoRA), step by step.

``OfficialRankAllocator`` below is a re-statement, written for this test, of what the official
``loralib/adalora.py`` ``RankAllocator`` does in ``update_and_mask`` (``update_ipt``, ``schedule_threshold``,
``mask_to_target_rank``), and ``official_loop`` of the order in which the official GLUE trainer
(``NLU/src/transformers/trainer.py``) calls it::

    optimizer.step(); lr_scheduler.step()
    rankallocator.update_and_mask(model, self.state.global_step)   # global_step starts at 0
    model.zero_grad(); self.state.global_step += 1

with ``set_total_step(max_steps)``. Both the reference and peftbench's allocator drive a copy of the same
tiny model with the same data; with the official timing switches the masks, the budget schedule and all
adapter weights must agree at every step, for a ΔT that does and one that does not divide T - t_f.
"""

from __future__ import annotations

import copy
import os

import pytest
import torch
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from transformers import BertConfig, BertForSequenceClassification  # noqa: E402

from peftbench.methods.adalora.config import AdaLoRAConfig  # noqa: E402
from peftbench.methods.adalora.method import AdaLoRAMethod, adapted_layers  # noqa: E402
from peftbench.models import load_model_config, model_spec  # noqa: E402

BERT_SPEC = model_spec(load_model_config("tiny_bert"))
SETTINGS = dict(target_rank=2, init_rank=6, t_i=5, t_f=10, delta_t=3, lora_alpha=32.0, orth_reg_weight=0.1)
BETA = 0.85


class OfficialRankAllocator:
    """The official ``RankAllocator``'s per-step logic, keyed by parameter name as the original.

    ``update_and_mask(model, global_step)`` returns (budget, keep-masks by ``lora_E`` name, or None when
    the step does not mask).
    """

    def __init__(self, model: nn.Module, target_rank: int, t_i: int, t_f: int, delta_t: int, total_step: int):
        lora_a = {n: p for n, p in model.named_parameters() if "lora_A" in n}
        self.total_rank = sum(p.shape[0] for p in lora_a.values())  # b(0): sum of initial ranks
        self.target_total = target_rank * len(lora_a)  # b(T) = r̄ × number of adapted matrices
        self.t_i, self.t_f, self.delta_t, self.total_step = t_i, t_f, delta_t, total_step
        assert total_step > t_i + t_f  # set_total_step
        self.ema_ipt: dict[str, torch.Tensor] = {}
        self.ema_unc: dict[str, torch.Tensor] = {}

    def budget_and_mask_flag(self, step: int) -> tuple[int, bool]:
        """schedule_threshold: warm-up (no mask), cubic decrease (mask when ΔT | step), final (mask always)."""
        if step <= self.t_i:
            return self.total_rank, False
        if step > self.total_step - self.t_f:
            return self.target_total, True
        progress = (step - self.t_i) / (self.total_step - self.t_f - self.t_i)
        budget = int(self.target_total + (self.total_rank - self.target_total) * (1 - progress) ** 3)
        return budget, step % self.delta_t == 0

    @torch.no_grad()
    def update_importance(self, model: nn.Module) -> None:
        """update_ipt: |p · grad|, then the sensitivity EMA, then the uncertainty EMA with the new one."""
        for name, p in model.named_parameters():
            if "lora_" not in name:
                continue
            ipt = (p * p.grad).abs()
            ema = BETA * self.ema_ipt.get(name, torch.zeros_like(p)) + (1 - BETA) * ipt
            self.ema_ipt[name] = ema
            self.ema_unc[name] = BETA * self.ema_unc.get(name, torch.zeros_like(p)) + (1 - BETA) * (ipt - ema).abs()

    @torch.no_grad()
    def mask(self, model: nn.Module, budget: int) -> dict[str, torch.Tensor]:
        """mask_to_target_rank: triplet score = s(E) + (mean_row s(A) + mean_col s(B)); the (b(0) - budget)-th
        smallest score is the threshold and every lora_E entry whose score is <= it is zeroed."""
        row_means: dict[str, list[torch.Tensor]] = {}
        singular: dict[str, torch.Tensor] = {}
        for name, _ in model.named_parameters():
            score = self.ema_ipt.get(name)
            if score is None:
                continue
            score = score * self.ema_unc[name]
            if "lora_A" in name:
                row_means.setdefault(name.replace("lora_A", "%s"), []).append(score.mean(dim=1, keepdim=True))
            elif "lora_B" in name:
                row_means.setdefault(name.replace("lora_B", "%s"), []).append(score.mean(dim=0).view(-1, 1))
            elif "lora_E" in name:
                singular[name.replace("lora_E", "%s")] = score
        triplet = {
            key % "lora_E": singular[key].view(-1) + torch.cat(parts, dim=1).sum(dim=1).view(-1)
            for key, parts in row_means.items()
        }
        threshold = torch.kthvalue(torch.cat(list(triplet.values())), self.total_rank - budget)[0].item()
        for name, p in model.named_parameters():
            if name in triplet:
                p.masked_fill_((triplet[name] <= threshold).view(-1, 1), 0.0)
        return {name: score > threshold for name, score in triplet.items()}

    def update_and_mask(self, model: nn.Module, global_step: int) -> tuple[int, dict[str, torch.Tensor] | None]:
        if global_step < self.total_step - self.t_f:  # no importance update in the final fine-tuning
            self.update_importance(model)
        budget, do_mask = self.budget_and_mask_flag(global_step)
        return budget, (self.mask(model, budget) if do_mask else None)


def official_orth_regu(model: nn.Module, weight: float) -> torch.Tensor:
    """compute_orth_regu: mean over lora_A/lora_B of ‖AAᵀ - I‖_F / ‖BᵀB - I‖_F, in parameter order."""
    total, count = 0.0, 0
    for name, p in model.named_parameters():
        if "lora_A" in name or "lora_B" in name:
            gram = p @ p.T if "lora_A" in name else p.T @ p
            total = total + torch.norm(gram - torch.eye(*gram.shape), p="fro")
            count += 1
    return weight * total / count


def tiny_bert(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=2,
    )  # fmt: skip
    return BertForSequenceClassification(config)


def batch(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"input_ids": torch.randint(1, 100, (8, 8), generator=g), "labels": torch.randint(0, 2, (8,), generator=g)}


def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


class Twins:
    """One backbone, adapted once by peftbench and copied: the reference drives the copy."""

    def __init__(self, total_steps: int, **settings):
        self.ours = tiny_bert(seed=3)
        self.method = AdaLoRAMethod(AdaLoRAConfig(**settings), BERT_SPEC)
        torch.manual_seed(4)
        self.method.apply(self.ours)
        self.ref = copy.deepcopy(self.ours)
        self.method.on_train_start(self.ours, total_steps)
        cfg = self.method.config
        self.allocator = OfficialRankAllocator(self.ref, cfg.target_rank, cfg.t_i, cfg.t_f, cfg.delta_t, total_steps)
        self.opt_ours = torch.optim.AdamW(trainable(self.ours), lr=5e-3)
        self.opt_ref = torch.optim.AdamW(trainable(self.ref), lr=5e-3)
        self.gamma = cfg.orth_reg_weight

    def ours_step(self, t: int) -> None:
        """peftbench's loop: completed-step count t from 1."""
        loss = self.ours(**batch(t)).loss + sum(self.method.extra_losses(self.ours).values())
        loss.backward()
        self.opt_ours.step()
        self.method.after_optimizer_step(self.ours, t)
        self.opt_ours.zero_grad()

    def ref_step(self, t: int, global_step: int) -> tuple[int, dict[str, torch.Tensor] | None]:
        """The official trainer's order, with the step it passes."""
        loss = self.ref(**batch(t)).loss + official_orth_regu(self.ref, self.gamma)
        loss.backward()
        self.opt_ref.step()
        out = self.allocator.update_and_mask(self.ref, global_step)
        self.opt_ref.zero_grad()
        return out

    def ours_masks(self) -> dict[str, torch.Tensor]:
        return {f"{m}.lora_E": keep for m, keep in self.method.allocator.masks.items()}

    def zero_patterns(self) -> tuple[dict, dict]:
        ours = {f"{n}.lora_E": (layer.lora_E == 0).view(-1) for n, layer in adapted_layers(self.ours).items()}
        ref = {n: (p == 0).view(-1) for n, p in self.ref.named_parameters() if "lora_E" in n}
        return ours, ref


def run_against_reference(total_steps: int, step_origin: str, delta_t: int = 3) -> Twins:
    """Train both for T steps; the reference gets the official trainer's step (t - 1) or t itself."""
    twins = Twins(total_steps, **dict(SETTINGS, delta_t=delta_t), step_origin=step_origin, final_phase="official")
    offset = 1 if step_origin == "official" else 0
    final_start = total_steps - SETTINGS["t_f"]
    history_expected, fixed = [], None
    for t in range(1, total_steps + 1):
        global_step = t - offset
        budget, ref_masks = twins.ref_step(t, global_step)
        twins.ours_step(t)
        assert twins.method.allocator.budget_at(t) == budget, f"budget differs at t={t}"
        if ref_masks is not None:
            if fixed is None:  # until the pattern is fixed, every official mask is a new one
                history_expected.append((t, global_step, budget))
            if global_step >= final_start and fixed is None:
                fixed = ref_masks
            if fixed is not None:  # official: recomputed from frozen scores, always the same pattern
                assert {n: m.tolist() for n, m in ref_masks.items()} == {n: m.tolist() for n, m in fixed.items()}
            assert {n: m.tolist() for n, m in ref_masks.items()} == {
                n: m.tolist() for n, m in twins.ours_masks().items()
            }, f"mask differs at t={t}"
        ours_zero, ref_zero = twins.zero_patterns()
        assert {n: z.tolist() for n, z in ours_zero.items()} == {n: z.tolist() for n, z in ref_zero.items()}, t
        for (name, p), q in zip(twins.ours.named_parameters(), twins.ref.parameters(), strict=True):
            assert torch.equal(p, q), f"{name} differs at t={t}"  # same op order: bit-identical
    history = [(h["step"], h["schedule_step"], h["budget"]) for h in twins.method.allocator.history]
    assert history == history_expected
    assert fixed is not None and len(history) >= 5
    return twins


@pytest.mark.parametrize("total_steps", [33, 34])  # T - t_f = 23 (ΔT = 3 does not divide it), 24 (it does)
def test_official_timing_matches_the_official_trainer_at_every_step(total_steps):
    twins = run_against_reference(total_steps, "official")
    history = twins.method.allocator.history
    final_start = total_steps - SETTINGS["t_f"]
    # The pattern is fixed at T - t_f when ΔT divides it, else one step later; loop step t = s + 1.
    fixing = final_start if final_start % 3 == 0 else final_start + 1
    assert history[-1]["schedule_step"] == fixing and history[-1]["step"] == fixing + 1
    assert history[-1]["budget"] == 2 * 12
    assert len(set(twins.method.final_ranks(twins.ours).values())) > 1  # really reallocated


def test_official_final_phase_with_one_based_steps_matches_the_allocator_fed_t():
    """final_phase is independent of step_origin: the official allocator called with t (not t - 1)."""
    run_against_reference(33, "one_based")


def test_peft_timing_runs_ahead_of_the_official_trainer():
    """Today's peft-like timing (one-based steps, force_mask at T - t_f) differs from the official run:
    the first mask comes one loop step earlier and the weights differ from then on."""
    total = 33
    official = Twins(total, **SETTINGS)  # defaults: step_origin = final_phase = "official"
    peft_like = Twins(total, **SETTINGS, step_origin="one_based", final_phase="peft")
    for t in range(1, total + 1):
        official.ours_step(t)
        peft_like.ours_step(t)
    first = [twins.method.allocator.history[0]["step"] for twins in (official, peft_like)]
    assert first == [7, 6]  # first s > t_i = 5 with ΔT = 3 | s is 6: official passes s = t - 1, so t = 7
    assert [h["schedule_step"] for h in peft_like.method.allocator.history][-1] == total - SETTINGS["t_f"]
    assert [h["schedule_step"] for h in official.method.allocator.history][-1] == total - SETTINGS["t_f"] + 1
    assert not all(
        torch.equal(p, q) for p, q in zip(official.ours.parameters(), peft_like.ours.parameters(), strict=True)
    )
