"""AdaLoRA as a peftbench method: injection, the orthogonal regulariser, rank allocation and records."""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from peftbench.methods.adalora.allocator import BudgetSchedule, RankAllocator
from peftbench.methods.adalora.config import AdaLoRAConfig
from peftbench.methods.adalora.layer import SVDLinear
from peftbench.methods.base import Method, ModelSpec, freeze, inject, matrix_records

RANK_NOTE = (
    "ranks are read at mask steps (every delta_t steps between t_i and T - t_f, then the pattern is frozen: "
    "at T - t_f with final_phase=peft; with final_phase=official at T - t_f when delta_t divides it, else one "
    "step later; with step_origin=official the schedule step is the loop step - 1, see schedule_step in "
    "rank_history); between mask steps masked singular values receive optimizer updates and come back "
    "until the next mask step, as in the official code and PEFT, so the rank in use there can be higher"
)


def adapted_layers(model: nn.Module) -> dict[str, SVDLinear]:
    """SVD adapters by qualified module name, in model order."""
    return {name: module for name, module in model.named_modules() if isinstance(module, SVDLinear)}


def orthogonal_regulariser(layers: list[SVDLinear]) -> torch.Tensor:
    """Mean over all P and Q of ‖QQᵀ - I‖_F and ‖PᵀP - I‖_F, as the official ``compute_orth_regu``.

    The paper's Eq. 4 writes R(P, Q) = ‖PᵀP - I‖²_F + ‖QQᵀ - I‖²_F summed over matrices; the official
    code (and PEFT) uses the plain Frobenius norm, not squared, divided by the number of P and Q matrices
    (2 n). We follow the code, whose γ values are the published ones. Summation order matches the code.
    """
    total = 0.0
    for layer in layers:
        for gram in (layer.lora_A @ layer.lora_A.T, layer.lora_B.T @ layer.lora_B):  # both (r, r)
            total = total + torch.norm(gram - identity(gram.shape[0], gram.dtype, gram.device), p="fro")
    return total / (2 * len(layers))


@functools.cache
def identity(size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """I of the regulariser, made once per shape instead of once per matrix and step (a kernel each on a GPU)."""
    return torch.eye(size, dtype=dtype, device=device)


class AdaLoRAMethod(Method):
    """SVD-form adapters with importance-driven global rank allocation (Zhang et al., ICLR 2023)."""

    name = "adalora"

    def __init__(self, config: AdaLoRAConfig, spec: ModelSpec) -> None:
        super().__init__(config, spec)
        self.allocator: RankAllocator | None = None
        self._layers: list[SVDLinear] = []
        self._pending_state: dict[str, Any] | None = None

    # --- injection --------------------------------------------------------------------------------
    def apply(self, model: nn.Module) -> nn.Module:
        """Wrap every nn.Linear of the target types in an SVD adapter; freeze all but adapters and head."""
        cfg = self.config
        inject(model, self.spec, cfg.target_types,
               lambda name, base: SVDLinear(base, cfg.initial_rank, cfg.lora_alpha, cfg.lora_dropout,
                                            fused=cfg.update_rounding == "fused"))
        freeze(model, self.spec)
        return model

    # --- training hooks ---------------------------------------------------------------------------
    def on_train_start(self, model: nn.Module, total_steps: int) -> None:
        cfg = self.config
        if cfg.t_i + cfg.t_f >= total_steps:
            raise ValueError(
                f"AdaLoRA needs t_i + t_f < total optimizer steps T, got t_i={cfg.t_i} + t_f={cfg.t_f} >= "
                f"T={total_steps}; lower method.t_i / method.t_f or train for more steps"
            )
        layers = adapted_layers(model)
        if not layers:
            raise ValueError("on_train_start found no AdaLoRA layers; call apply(model) first")
        n = len(layers)
        schedule = BudgetSchedule(
            b0=cfg.initial_rank * n,
            bT=cfg.target_rank * n,
            t_i=cfg.t_i,
            t_f=cfg.t_f,
            delta_t=cfg.delta_t,
            total_steps=total_steps,
        )
        self.allocator = RankAllocator(layers, schedule, cfg.beta1, cfg.beta2, cfg.step_origin, cfg.final_phase)
        self._layers = list(layers.values())  # model order, as the regulariser's summation; no walk per step
        if self._pending_state is not None:
            self.allocator.load_state_dict(self._pending_state)
            self._pending_state = None

    def extra_losses(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """γ · R (official form, see :func:`orthogonal_regulariser`); nothing at all when γ = 0."""
        if self.config.orth_reg_weight == 0:
            return {}
        layers = self._layers or list(adapted_layers(model).values())
        return {"orth_reg": self.config.orth_reg_weight * orthogonal_regulariser(layers)}

    def after_optimizer_step(self, model: nn.Module, step: int) -> None:
        """Importance update and masking; ``step`` counts completed optimizer steps from 1. The allocator maps
        it to the schedule step with ``method.step_origin`` (``official``: step - 1, as the official trainers
        call ``update_and_mask`` before incrementing their 0-based ``global_step``) and fixes the final
        pattern as ``method.final_phase`` says."""
        if self.allocator is None:
            raise RuntimeError("after_optimizer_step before on_train_start: the loop must call on_train_start")
        self.allocator.configure_timing(self.config.step_origin, self.config.final_phase)
        self.allocator.step(step)

    def on_evaluate(self, model: nn.Module, step: int) -> dict[str, Any]:
        if self.allocator is None:
            return {}
        return {
            "adalora_budget": self.allocator.budget_at(step),
            "adalora_total_rank": sum(self.current_ranks(model).values()),
        }

    # --- records ----------------------------------------------------------------------------------
    def current_ranks(self, model: nn.Module) -> dict[str, int]:
        """Ranks of the latest mask step, or the initial rank of every matrix before the first one."""
        if self.allocator is not None and self.allocator.masks:
            return self.allocator.ranks()
        return {name: layer.rank for name, layer in adapted_layers(model).items()}

    def final_ranks(self, model: nn.Module) -> dict[str, int]:
        return self.current_ranks(model)

    def on_train_end(self, model: nn.Module) -> dict[str, Any]:
        allocator = self.allocator
        return {
            "rank_history": list(allocator.history) if allocator else [],
            "rank_note": RANK_NOTE,
            "matrices": matrix_records(model, self.spec),
            "final_ranks": self.current_ranks(model),
            "budget_schedule": allocator.schedule.to_dict() if allocator else {},
        }

    def effective_parameters(self, model: nn.Module) -> int:
        """Σ over adapted matrices of final rank × (in + out + 1), plus the trainable head.

        Each kept triplet costs one column of P (out), one row of Q (in) and one singular value; masked
        triplets are zero in Λ and drop out of ΔW entirely (the paper's budget accounting, Table 7).
        """
        layers = adapted_layers(model)
        ranks = self.current_ranks(model)
        adapter = sum(ranks[name] * (layer.in_features + layer.out_features + 1) for name, layer in layers.items())
        head = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and self.spec.is_head(n))
        return adapter + head

    def planned_effective_parameters(self, model: nn.Module) -> int:
        """b(T) spread uniformly (r̄ per matrix), at the cost per triplet of ``effective_parameters``. The real
        count depends on where training puts the rank: FFN matrices cost more per triplet than attention ones."""
        rank = self.config.target_rank
        return sum(rank * (layer.in_features + layer.out_features + 1) for layer in adapted_layers(model).values())

    # --- resume -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.allocator is None:
            return {} if self._pending_state is None else {"allocator": self._pending_state}
        return {"allocator": self.allocator.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Works before or after ``on_train_start`` (before: applied when the schedule is known)."""
        if not state:
            return
        if self.allocator is None:
            self._pending_state = state["allocator"]
        else:
            self.allocator.load_state_dict(state["allocator"])
