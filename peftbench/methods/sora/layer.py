"""SoRA's gated low-rank module and its pruning into a plain LoRA module (math only).

Ding et al., EMNLP 2023, Sec. 3.1: a gate vector g in R^r sits between LoRA's down and up projections,

    h = W_0 x + W_u (g ⊙ (W_d x)) · alpha / r,

and after training the ranks whose gate is exactly zero are removed, leaving a LoRA module of smaller rank
(Fig. 1). Gates are updated by the proximal step of Eq. 9-10 (see ``optimizer.py``). The alpha / r scale is
not in the paper's equation; it comes from the authors' code (src/lora.py, loralib's LoRA scaling).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from peftbench.methods.base import LinearWrapper
from peftbench.methods.lowrank import add_low_rank_


def init_gate(rank: int, kind: str, like: torch.Tensor) -> torch.Tensor:
    """Gate values at initialisation; the authors draw them from a standard normal (src/lora.py)."""
    if kind == "normal":
        return torch.randn(rank, device=like.device, dtype=like.dtype)
    if kind == "ones":
        return torch.ones(rank, device=like.device, dtype=like.dtype)
    raise ValueError(f"unknown gate init {kind!r}; use normal or ones")



class SoRALinear(LinearWrapper):
    """nn.Linear plus a gated low-rank update. ``lora_A`` is W_d (r, in), ``lora_B`` is W_u (out, r)."""

    adapter_names = ("lora_A", "lora_B", "gate")

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0, gate_init: str = "normal"):
        super().__init__()
        self.base = base
        self.r = self.r_initial = r
        self.scaling = alpha / r  # alpha / initial r, kept after pruning so outputs do not change
        weight = base.weight
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, device=weight.device, dtype=weight.dtype))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, device=weight.device, dtype=weight.dtype))
        # Kaiming-uniform A and zero B as in LoRA: the update starts at exactly zero whatever the gate.
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.gate = nn.Parameter(init_gate(r, gate_init, weight))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def nonzero_rank(self) -> int:
        return int(torch.count_nonzero(self.gate.detach()))

    def delta_weight(self) -> torch.Tensor:
        """ΔW = W_u diag(g) W_d · scaling, shape (out, in): the update as one matrix (merged evaluation)."""
        return (self.lora_B * self.gate) @ self.lora_A * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        down = self.dropout(x) @ self.lora_A.T  # (..., r)
        return add_low_rank_(self.base(x), down * self.gate, self.lora_B, self.scaling)  # (..., out)


class LoRALinear(LinearWrapper):
    """Plain LoRA: h = W_0 x + B A x · scaling. What a pruned SoRA module becomes; its rank may be 0."""

    adapter_names = ("lora_A", "lora_B")

    def __init__(
        self,
        base: nn.Linear,
        lora_A: torch.Tensor,
        lora_B: torch.Tensor,
        scaling: float,
        dropout: float = 0.0,
        r_initial: int | None = None,
    ) -> None:
        super().__init__()
        self.base = base
        self.r = lora_A.shape[0]
        self.r_initial = self.r if r_initial is None else r_initial  # rank before pruning, for parameter reports
        self.scaling = scaling
        self.lora_A = nn.Parameter(lora_A)  # (r, in)
        self.lora_B = nn.Parameter(lora_B)  # (out, r)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def nonzero_rank(self) -> int:
        return self.r

    def delta_weight(self) -> torch.Tensor:
        """ΔW = B A · scaling, shape (out, in) (merged evaluation); zero at rank 0."""
        return self.lora_B @ self.lora_A * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return add_low_rank_(self.base(x), self.dropout(x) @ self.lora_A.T, self.lora_B, self.scaling)


@torch.no_grad()
def prune(module: SoRALinear) -> LoRALinear:
    """Drop the ranks whose gate is exactly zero and fold the remaining gate into W_u:
    W_u (g ⊙ W_d x) = (W_u diag(g)) W_d x, so B' = B[:, keep] * g[keep] and A' = A[keep]."""
    keep = module.gate.detach() != 0
    lora_A = module.lora_A.detach()[keep].clone()
    lora_B = (module.lora_B.detach()[:, keep] * module.gate.detach()[keep]).clone()
    dropout = module.dropout.p if isinstance(module.dropout, nn.Dropout) else 0.0
    pruned = LoRALinear(module.base, lora_A, lora_B, module.scaling, dropout, r_initial=module.r_initial)
    pruned.lora_A.requires_grad_(module.lora_A.requires_grad)
    pruned.lora_B.requires_grad_(module.lora_B.requires_grad)
    return pruned
