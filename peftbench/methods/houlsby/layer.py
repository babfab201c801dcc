"""Bottleneck adapters (math only): the module of Houlsby et al. (2019) that Pfeiffer et al. (2021) and He et
al. (2022) reuse, and the wrapper that puts it behind a frozen projection.

One adapter with hidden size h and bottleneck d (Houlsby et al., Sec. 2.1 and Fig. 2):

    A(y) = W_up f(W_down y + b_down) + b_up,        W_down: d x h, W_up: h x d,

2hd + d + h parameters (biases, no LayerNorm of its own). A *sequential* adapter adds it to its input,
y + A(y) (the adapter's internal skip connection); a *parallel* one adds s · A(x) of another input x
(``peftbench/methods/parallel/layer.py``). W_up and b_up start at zero, so every adapter is the identity map
(sequential) or adds exactly zero (parallel) at step 0 and the model's outputs equal the frozen backbone's.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from peftbench.methods.base import LinearWrapper
from peftbench.methods.houlsby.config import INITS

ACTIVATIONS = {
    "swish": F.silu,  # x · sigmoid(x): AdaLoRA's HAdapter baseline (its DeBERTaV2 code passes 'swish')
    "gelu": F.gelu,  # Houlsby et al.'s released TF code (adapter-bert, feedforward_adapter)
    "relu": F.relu,  # Pfeiffer et al. and He et al.; AdaLoRA's PAdapter baseline
    "tanh": torch.tanh,
}


class Bottleneck(nn.Module):
    """A(y) = up(f(down(y))): down h -> d, nonlinearity f, up d -> h; up starts at zero.

    ``init`` sets W_down: ``normal`` draws N(0, init_std²) truncated at 2 std (Houlsby et al., Sec. 3.6: std
    1e-2), ``kaiming`` is nn.Linear's / LoRA's Kaiming-uniform (He et al.'s ``init_option=lora``). b_down = 0.
    """

    def __init__(self, hidden: int, bottleneck: int, activation: str, init: str = "normal", init_std: float = 1e-2,
                 device: torch.device | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; choose from {INITS}")
        self.activation = activation
        self.down = nn.Linear(hidden, bottleneck, device=device, dtype=dtype)
        self.up = nn.Linear(bottleneck, hidden, device=device, dtype=dtype)
        with torch.no_grad():
            if init == "normal":
                nn.init.trunc_normal_(self.down.weight, std=init_std, a=-2 * init_std, b=2 * init_std)
            else:
                nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
            nn.init.zeros_(self.down.bias)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.up(ACTIVATIONS[self.activation](self.down(y)))


def parameter_count(hidden: int, bottleneck: int) -> int:
    """2hd + d + h: W_down, b_down, W_up, b_up of one adapter."""
    return 2 * hidden * bottleneck + bottleneck + hidden


class SequentialAdapter(LinearWrapper):
    """A frozen projection followed by an adapter: z = W x + b, out = z + A(z).

    Wrapping the sub-layer's output projection puts the adapter right after it, before the block's dropout,
    residual addition and LayerNorm (Houlsby et al., Fig. 2)."""

    adapter_names = ("adapter",)

    def __init__(self, base: nn.Linear, bottleneck: int, activation: str, init: str = "normal",
                 init_std: float = 1e-2) -> None:
        super().__init__()
        self.base = base
        self.adapter = Bottleneck(base.out_features, bottleneck, activation, init, init_std,
                                  device=base.weight.device, dtype=base.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.base(x)
        return z + self.adapter(z)
