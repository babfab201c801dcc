"""SoRA (Ding et al., EMNLP 2023): LoRA with a gate per rank, sparsified by a proximal gate optimizer.

Hook use: ``apply`` swaps each targeted nn.Linear for a :class:`SoRALinear`; A, B and the task head go to the
loop's main AdamW, the gates to :class:`ProximalAdam` from ``extra_optimizers``; ``extra_losses`` returns the
L1 term; ``on_train_end`` prunes zero-gate ranks into plain LoRA modules.

Parameter counts in the records (adapter only, task head excluded as in the budget; ``effective_parameters()``
adds the head, as the base class does for every method):
- ``effective``: sum over adapted matrices of nonzero_rank * (in + out). The gates fold into W_u when pruning,
  so they add nothing.
- ``authors_approx``: the authors' src/util.py count, all of A and B minus 2 * hidden per zero gate. Exact
  only for square matrices: a zeroed FFN rank frees hidden + intermediate (5 * hidden in BERT/DeBERTa), so
  the authors' count stays 3 * hidden too high per zeroed FFN rank.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from peftbench.methods.base import Method, ModelSpec, freeze, inject, matrix_records, replace_module
from peftbench.methods.sora.config import SoRAConfig
from peftbench.methods.sora.layer import LoRALinear, SoRALinear, prune
from peftbench.methods.sora.optimizer import ProximalAdam

Adapted = SoRALinear | LoRALinear


def adapted_modules(model: nn.Module) -> dict[str, Adapted]:
    return {name: m for name, m in model.named_modules() if isinstance(m, SoRALinear | LoRALinear)}


def effective_parameters(modules: dict[str, Adapted]) -> int:
    return sum(m.nonzero_rank() * (m.in_features + m.out_features) for m in modules.values())


def authors_approx_parameters(modules: dict[str, Adapted], hidden_size: int) -> int:
    """Initial A and B sizes minus 2 * hidden per zeroed rank (src/util.py compute_trainable_sparse_param)."""
    full = sum(m.r_initial * (m.in_features + m.out_features) for m in modules.values())
    zeroed = sum(m.r_initial - m.nonzero_rank() for m in modules.values())
    return full - 2 * hidden_size * zeroed


class SoRAMethod(Method):
    name = "sora"

    def __init__(self, config: SoRAConfig, spec: ModelSpec) -> None:
        super().__init__(config, spec)
        self.threshold = config.threshold  # current xi; the sparsifying scheduler raises it stage by stage
        self.stage = 0
        self.rank_history: list[dict[str, Any]] = []
        self.gate_optimizer: ProximalAdam | None = None
        self._gates: list[nn.Parameter] = []

    # -- injection --------------------------------------------------------------------------------
    def apply(self, model: nn.Module) -> nn.Module:
        c = self.config
        inject(model, self.spec, c.target_types,
               lambda name, base: SoRALinear(base, c.r, c.alpha, c.dropout, c.gate_init))
        freeze(model, self.spec)
        return model

    # -- optimisation -----------------------------------------------------------------------------
    def gates(self, model: nn.Module) -> dict[str, nn.Parameter]:
        return {f"{n}.gate": m.gate for n, m in adapted_modules(model).items() if isinstance(m, SoRALinear)}

    def own_optimized(self, model: nn.Module) -> set[str]:
        return set(self.gates(model))

    def extra_optimizers(self, model: nn.Module, lr: float) -> list[torch.optim.Optimizer]:
        c = self.config
        self._gates = list(self.gates(model).values())  # the L1 term reads these every step: no module walk
        self.gate_optimizer = ProximalAdam(
            self._gates,
            lr=c.gate_lr if c.gate_lr is not None else lr,
            threshold=self.threshold,
            mode=c.threshold_mode,
            threshold_times_lr=c.threshold_times_lr,
        )
        return [self.gate_optimizer]

    def extra_losses(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """eta * sum|g| / (number of gates), one mean over all gates of the model as in src/trainer.py."""
        gates = self._gates or list(self.gates(model).values())
        if self.config.l1_weight == 0 or not gates:
            return {}
        return {"sora_l1": self.config.l1_weight * torch.cat([g.abs() for g in gates]).mean()}

    def set_threshold(self, xi: float, stage: int | None = None) -> None:
        """Sparsifying scheduler hook: use ``xi`` from the next gate step on."""
        self.threshold = float(xi)
        if stage is not None:
            self.stage = stage
        if self.gate_optimizer is not None:
            self.gate_optimizer.threshold = self.threshold

    # -- records ----------------------------------------------------------------------------------
    def ranks(self, model: nn.Module) -> dict[str, int]:
        return {name: m.nonzero_rank() for name, m in adapted_modules(model).items()}

    def nonzero_parameters(self, model: nn.Module) -> int:
        return effective_parameters(adapted_modules(model))

    def head_parameters(self, model: nn.Module) -> int:
        return sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and self.spec.is_head(n))

    def effective_parameters(self, model: nn.Module) -> int:
        """Base-class meaning (what the run's ``parameters.effective`` reports for every method): adapter
        parameters left after pruning plus the task head."""
        return self.nonzero_parameters(model) + self.head_parameters(model)

    def on_evaluate(self, model: nn.Module, step: int) -> dict[str, Any]:
        ranks = self.ranks(model)
        self.rank_history.append({"step": step, "ranks": ranks})
        return {"ranks": ranks, "nonzero_parameters": self.nonzero_parameters(model)}

    def records(self, model: nn.Module) -> dict[str, Any]:
        modules = adapted_modules(model)
        hidden = getattr(getattr(model, "config", None), "hidden_size", None)
        return {
            "rank_history": list(self.rank_history),
            "matrices": matrix_records(model, self.spec),
            "final_ranks": self.ranks(model),
            "initial_rank": self.config.r,
            "threshold": self.threshold,
            "effective_parameters": effective_parameters(modules),
            "authors_approx_parameters": None if hidden is None else authors_approx_parameters(modules, hidden),
            "head_parameters": self.head_parameters(model),
        }

    def on_train_end(self, model: nn.Module) -> dict[str, Any]:
        records = self.records(model)
        if self.config.prune_at_end:
            self.prune(model)
        return records

    def prune(self, model: nn.Module) -> None:
        """Replace every gated module by a plain LoRA module holding only its nonzero ranks."""
        for name, module in adapted_modules(model).items():
            if isinstance(module, SoRALinear):
                replace_module(model, name, prune(module))
        self.gate_optimizer = None

    # -- resume -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "stage": self.stage, "rank_history": list(self.rank_history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rank_history = list(state.get("rank_history", []))
        self.set_threshold(state["threshold"], stage=state["stage"])
