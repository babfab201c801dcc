"""Evaluation through merged weights: every adapted linear whose output is ``base(x) + x ΔWᵀ`` (LoRA,
AdaLoRA's P Λ Q, SoRA's gated and pruned forms) is swapped, for the evaluation only, for a plain ``nn.Linear``
holding W0 + ΔW.

The map is the same (up to float rounding: one matmul instead of three), but an evaluation pass no longer pays
for the rank-r matmuls, the scaling and the sum, which on the quickstart were a fifth of its time. The adapted
modules themselves are put back untouched afterwards (no merge and unmerge in place, whose rounding would leave
W0 changed in its last bits and the rest of training with it). ``trainer.merge_for_evaluation=false`` evaluates
through the adapters as they train.

Modules that cannot be merged exactly keep their own forward: bottleneck adapters and prefixes (not linear in
W), 4-bit backbones (``ΔW`` cannot be added to packed weights without requantising), PEFT's LoRA variants
(DoRA, ...), biased LoRA and disabled or already merged adapters.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from peftbench.methods.base import replace_module


def mergeable_delta(module: nn.Module) -> tuple[nn.Linear, torch.Tensor] | None:
    """The frozen ``nn.Linear`` of an adapted module and the ΔW (shaped like its weight) that its adapter adds,
    or None when the module is not exactly ``base(x) + x ΔWᵀ``."""
    if hasattr(module, "get_delta_weight") and hasattr(module, "lora_variant"):
        return _peft_lora_delta(module)
    delta_weight = getattr(module, "delta_weight", None)  # ours: AdaLoRA's SVDLinear, SoRA's layers
    base = getattr(module, "base", None)
    base = getattr(module, "base_layer", None) if base is None else base
    if delta_weight is None or type(base) is not nn.Linear:
        return None
    return base, delta_weight()


def plain_lora_adapters(module: nn.Module) -> list[str]:
    """The active adapters of a PEFT ``lora.Linear`` when its output is exactly ``base(x) + Σ s B A x`` over a plain
    ``nn.Linear`` (no variant such as DoRA, no LoRA bias, neither merged nor disabled); empty otherwise. Merged
    evaluation and the fused training forward (``peftbench.methods.lora.layer``) both rest on this."""
    if type(module.get_base_layer()) is not nn.Linear or module.disable_adapters or module.merged:
        return []
    active = [name for name in module.active_adapters if name in module.lora_A]
    if any(name in module.lora_variant or module.lora_bias.get(name) for name in active):
        return []
    return active


def _peft_lora_delta(module: nn.Module) -> tuple[nn.Linear, torch.Tensor] | None:
    """PEFT's ``lora.Linear``: the sum of its active adapters' ``get_delta_weight`` (which applies the scaling
    and ``fan_in_fan_out``), when every active adapter is vanilla LoRA."""
    active = plain_lora_adapters(module)
    if not active:
        return None
    return module.get_base_layer(), sum(module.get_delta_weight(name) for name in active)


def merged_linear(base: nn.Linear, delta: torch.Tensor) -> nn.Linear:
    """A new ``nn.Linear`` with weight W0 + ΔW (a new tensor) and the base's own bias."""
    merged = nn.Linear(base.in_features, base.out_features, bias=False, device="meta")
    merged.weight = nn.Parameter(base.weight.detach() + delta.detach().to(base.weight.dtype), requires_grad=False)
    merged.bias = base.bias
    return merged


@contextmanager
def merged_for_evaluation(model: nn.Module) -> Iterator[int]:
    """Inside the block, every mergeable adapted module of ``model`` is a merged ``nn.Linear``; yields how many
    were swapped. The original modules (and their training flags) are restored on exit, also on error."""
    swapped: list[tuple[str, nn.Module]] = []
    with torch.no_grad():
        for name, module in list(model.named_modules()):
            found = mergeable_delta(module)
            if found is not None:
                replace_module(model, name, merged_linear(*found))
                swapped.append((name, module))
    try:
        yield len(swapped)
    finally:
        for name, module in swapped:
            module.train(model.get_submodule(name).training)
            replace_module(model, name, module)
