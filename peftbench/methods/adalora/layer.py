"""SVD-form adapter around a frozen ``nn.Linear`` (AdaLoRA Eq. 3): W = W0 + ΔW, ΔW = P Λ Q.

Naming follows the official code (QingruZhang/AdaLoRA, loralib/adalora.py ``SVDLinear``) and PEFT, so
that parameter names line up in faithfulness tests:

- ``lora_B`` = P, shape (out, r): left singular vectors,
- ``lora_E`` = diag(Λ), shape (r, 1): singular values, the entries that rank allocation masks,
- ``lora_A`` = Q, shape (r, in): right singular vectors.

Initialisation as in the official ``reset_parameters``: Λ = 0 (so ΔW = 0 at step 0 while P and Q still
receive gradients once Λ moves), P and Q ~ N(0, 0.02²). The update is scaled by α / (r_init + 1e-5): the
official ``ranknum`` is the *initial* rank, frozen for the whole run (masking does not change it), and
``scaling = α`` (or r when α <= 0). The 1e-5 is kept for bit-identical results with official/PEFT code.

``fused=True`` (``AdaLoRAConfig.update_rounding="fused"``, the default) adds the update with one ``addmm_``
scaled by α / (r_init + 1e-5) instead (``peftbench.methods.lowrank``); ``fused=False`` keeps the official
operation order and is bit-identical to it.
"""

from __future__ import annotations

import torch
from torch import nn

from peftbench.methods.lowrank import add_low_rank_


class SVDLinear(nn.Module):
    adapter_names = ("lora_A", "lora_E", "lora_B")

    def __init__(self, base_layer: nn.Linear, rank: int, alpha: float, dropout: float = 0.0,
                 fused: bool = False) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"SVDLinear needs rank >= 1, got {rank}")
        self.base_layer = base_layer
        self.in_features = base_layer.in_features
        self.out_features = base_layer.out_features
        self.rank = rank
        self.scaling = float(alpha) if alpha > 0 else float(rank)
        weight = base_layer.weight
        self.lora_A = nn.Parameter(weight.new_zeros(rank, self.in_features))  # Q: (r, in)
        self.lora_E = nn.Parameter(weight.new_zeros(rank, 1))  # Λ: (r, 1)
        self.lora_B = nn.Parameter(weight.new_zeros(self.out_features, rank))  # P: (out, r)
        # A buffer rather than the official frozen Parameter: not trainable, not counted as a parameter,
        # and kept as a tensor so that (ranknum + 1e-5) rounds exactly as in the official code.
        self.register_buffer("ranknum", weight.new_full((1,), float(rank)), persistent=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fused = fused  # AdaLoRAConfig.update_rounding == "fused"
        self.fused_scaling = self.scaling / (rank + 1e-5)  # a Python float: no device sync in forward
        base_layer.weight.requires_grad_(False)
        self.reset_adapter()

    @torch.no_grad()
    def reset_adapter(self) -> None:
        nn.init.zeros_(self.lora_E)
        nn.init.normal_(self.lora_A, mean=0.0, std=0.02)
        nn.init.normal_(self.lora_B, mean=0.0, std=0.02)

    def delta_weight(self) -> torch.Tensor:
        """ΔW = P Λ Q · α / (r_init + 1e-5), shape (out, in) like ``base_layer.weight``."""
        return self.lora_B @ (self.lora_A * self.lora_E) * self.scaling / (self.ranknum + 1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base_layer(x)
        down = self.dropout(x) @ (self.lora_A * self.lora_E).T  # x Qᵀ Λ: (..., r)
        if self.fused:  # one addmm scaled by α / (r + 1e-5): equal to the official order within rounding
            return add_low_rank_(result, down, self.lora_B, self.fused_scaling)
        # The official order (· α, then / (r + 1e-5)), bit for bit; in place, so no output-sized temporaries.
        return result.add_((down @ self.lora_B.T).mul_(self.scaling).div_(self.ranknum + 1e-5))

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, rank={self.rank}, scaling={self.scaling}"
