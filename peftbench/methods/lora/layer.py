"""PEFT's ``lora.Linear`` with its vanilla forward fused (see ``peftbench.methods.lowrank``).

Only ``forward`` changes, and only where the module is plain LoRA over a plain ``nn.Linear``: one active
adapter, no variant (DoRA, ...), no LoRA bias, not merged or disabled, no extra forward arguments. Everything
else (parameters, state dict, ``merge``, ``get_delta_weight``, PEFT's saving and loading) is PEFT's own, so a
model trained here loads in PEFT and back unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from peft.tuners.lora import Linear as PeftLoraLinear
from torch import nn

from peftbench.methods.lowrank import add_low_rank_
from peftbench.methods.merging import plain_lora_adapters


class FusedLoRALinear(PeftLoraLinear):
    """LoRA Eq. (3), h = W0 x + (alpha / r) B A x, with the update added by one ``addmm_`` into W0 x."""

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        adapters = plain_lora_adapters(self)
        if len(adapters) != 1 or args or kwargs:
            return super().forward(x, *args, **kwargs)
        adapter = adapters[0]
        lora_A, lora_B = self.lora_A[adapter], self.lora_B[adapter]
        down = lora_A(self.lora_dropout[adapter](self._cast_input_dtype(x, lora_A.weight.dtype)))
        return add_low_rank_(self.base_layer(x), down, lora_B.weight, self.scaling[adapter])


def fuse(model: nn.Module) -> int:
    """Give every PEFT ``lora.Linear`` over a plain ``nn.Linear`` the fused forward, in place; returns how many.

    The class is swapped on the existing modules (as ``torch.nn.utils.parametrize`` does) rather than registered
    with PEFT's custom-module dispatch, which matches by ``isinstance`` and would also catch bitsandbytes'
    ``Linear4bit`` (a subclass of ``nn.Linear``) that PEFT's own 4-bit layer must wrap."""
    fused = 0
    for module in model.modules():
        if type(module) is PeftLoraLinear and type(module.get_base_layer()) is nn.Linear:
            module.__class__ = FusedLoRALinear
            fused += 1
    return fused
