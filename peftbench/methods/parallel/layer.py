"""The parallel adapter (He et al., ICLR 2022), math only.

An FFN block computes z' = W_2 g(W_1 x + b_1) + b_2 from its input x. The parallel adapter reads x, not z':

    z' <- z' + s · U f(D x),        D: d x h, U: h x d, f = ReLU,

so it needs two seams: :class:`FFNInputTap` wraps W_1 and keeps x; :class:`ParallelAdapter` wraps W_2 and adds
s · A(x). The two share a :class:`Stash` (one per block; a plain object, so it is no parameter and no
submodule, and ``copy.deepcopy`` of the model keeps each pair sharing its own stash).
"""

from __future__ import annotations

import torch
from torch import nn

from peftbench.methods.base import LinearWrapper
from peftbench.methods.houlsby.layer import Bottleneck


class Stash:
    """The FFN input of the current forward pass, from the tap to the adapter; emptied once read."""

    def __init__(self) -> None:
        self.value: torch.Tensor | None = None

    def __deepcopy__(self, memo: dict) -> Stash:
        return Stash()  # never copy an activation; the memo still makes both wrappers share the new one


class FFNInputTap(LinearWrapper):
    """W_1 unchanged; its input x is kept for the block's parallel adapter. Declares no parameters."""

    def __init__(self, base: nn.Linear, stash: Stash) -> None:
        super().__init__()
        self.base = base
        self.stash = stash

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.stash.value = x
        return self.base(x)


class ParallelAdapter(LinearWrapper):
    """W_2 plus the parallel branch: out = W_2 a + b_2 + s · U f(D x), x the block's FFN input."""

    adapter_names = ("adapter",)

    def __init__(self, base: nn.Linear, stash: Stash, bottleneck: int, scale: float, activation: str = "relu",
                 init: str = "kaiming", init_std: float = 1e-2) -> None:
        super().__init__()
        self.base = base
        self.stash = stash
        self.scale = scale
        self.adapter = Bottleneck(base.out_features, bottleneck, activation, init, init_std,
                                  device=base.weight.device, dtype=base.weight.dtype)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        x, self.stash.value = self.stash.value, None
        if x is None:
            raise RuntimeError("parallel adapter: the FFN's output projection ran before its input projection")
        return self.base(hidden) + self.scale * self.adapter(x)
