"""MAM's parallel FFN adapter (He et al., ICLR 2022, Sec. 3 and 4.4), kept small here; a standalone ``parallel``
method may later share it.

For the FFN of each block, with x its input (``ffn_in``'s input) and FFN(x) its output (``ffn_out``'s output):

    FFN'(x) = FFN(x) + s · W_up ReLU(W_down x + b_down) + s · b_up,   W_down ∈ R^{d×h}, W_up ∈ R^{h×d},

i.e. the adapter reads the FFN input and its scaled output is added to the FFN output, before the block's dropout,
residual and LayerNorm (He et al. add it after the FFN dropout; with dropout off at evaluation the two agree).
Parameters per block: 2hd + d + h. W_down is Kaiming-uniform, W_up and both biases start at zero (their "lora"
init), so the adapter is the identity at step 0.

Wiring: ``ffn_in``'s nn.Linear is wrapped by :class:`FFNInput`, which hands its input to the :class:`FFNOutput`
wrapping the same block's ``ffn_out``; that wrapper owns the adapter and adds it to its output.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from peftbench.methods.base import LinearWrapper


class ParallelAdapter(nn.Module):
    """s · up(ReLU(down(x)))."""

    def __init__(self, hidden: int, bottleneck: int, scaling: float, dropout: float = 0.0, *,
                 device=None, dtype=None) -> None:
        super().__init__()
        self.scaling = scaling
        self.down = nn.Linear(hidden, bottleneck, device=device, dtype=dtype)
        self.up = nn.Linear(bottleneck, hidden, device=device, dtype=dtype)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        if self.down.weight.device.type != "meta":
            with torch.no_grad():
                nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
                nn.init.zeros_(self.down.bias)
                nn.init.zeros_(self.up.weight)
                nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.dropout(torch.relu(self.down(x)))) * self.scaling


class FFNOutput(nn.Module):
    """The block's FFN output projection plus the parallel adapter of the block's FFN input."""

    adapter_names = ("adapter",)

    def __init__(self, base: nn.Linear, adapter: ParallelAdapter) -> None:
        super().__init__()
        self.base = base
        self.adapter = adapter
        self.pending: torch.Tensor | None = None

    @property
    def in_features(self) -> int:  # the adapter's input and output width (the matrices record)
        return self.adapter.down.in_features

    @property
    def out_features(self) -> int:
        return self.adapter.up.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ffn_input, self.pending = self.pending, None
        if ffn_input is None:
            raise RuntimeError("FFNOutput ran before its block's FFNInput: the parallel adapter has no FFN input")
        return self.base(x) + self.adapter(ffn_input)


class FFNInput(LinearWrapper):
    """The block's FFN input projection; passes its input on to the block's :class:`FFNOutput`."""

    def __init__(self, base: nn.Linear, output: FFNOutput) -> None:
        super().__init__()
        self.base = base
        object.__setattr__(self, "_output", output)  # a plain reference: the output wrapper is registered elsewhere

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._output.pending = x
        return self.base(x)
