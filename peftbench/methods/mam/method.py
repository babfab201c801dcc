"""MAM adapter (He et al., "Towards a Unified View of Parameter-Efficient Transfer Learning", ICLR 2022):
prefix tuning on attention plus a scaled parallel adapter on the FFN ("Mix-And-Match").

    head_i^s(x) = Attn(x W_Q,i, [P_K,i^s ; x W_K,i], [P_V,i^s ; x W_V,i])          at every attention site s
    FFN'(x)     = FFN(x) + s · W_up ReLU(W_down x + b_down) + s · b_up             in every block

The prefix is prefix tuning's (``peftbench/methods/prefix``: MLP-reparameterised while training, folded into
2·l·h values per site afterwards; on BART at encoder self-, decoder self- and cross-attention); the parallel
adapter (``layer.py``) goes into every encoder and decoder block's FFN. Kept parameters:

    effective = 2·l·h·S + L_blocks · (2hd + d + h)      (+ the task head; trainable adds the prefix MLP)

The budget knob is the FFN bottleneck d (He et al. put most of MAM's capacity there); a cap binds the effective
count. No input positions are added: ``virtual_tokens() == 0``.
"""

from __future__ import annotations

import re
from typing import Any

from torch import nn

from peftbench.methods.base import replace_module
from peftbench.methods.mam.layer import FFNInput, FFNOutput, ParallelAdapter
from peftbench.methods.prefix.method import PrefixMethod


def block_of(spec: Any, name: str) -> str:
    match = re.match(spec.roles["blocks"], name)
    if match is None:
        raise ValueError(f"{name} lies in no block of {spec.name}")
    return match.group(0)


def attach_parallel_adapters(model: nn.Module, spec: Any, bottleneck: int, scaling: float,
                             dropout: float) -> dict[str, FFNOutput]:
    """Wrap each block's ffn_out (owning the adapter) and ffn_in (handing over its input); return the owners."""
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    outputs, inputs = spec.modules_of("ffn_out", linears), spec.modules_of("ffn_in", linears)
    if not outputs or len(outputs) != len(inputs):
        raise ValueError(f"{spec.name}: FFN input/output projections do not pair up ({len(inputs)} / {len(outputs)})")
    owners: dict[str, FFNOutput] = {}
    for name in outputs:
        base = model.get_submodule(name)
        adapter = ParallelAdapter(base.out_features, bottleneck, scaling, dropout, device=base.weight.device,
                                  dtype=base.weight.dtype)
        owners[block_of(spec, name)] = wrapped = FFNOutput(base, adapter)
        replace_module(model, name, wrapped)
    for name in inputs:
        replace_module(model, name, FFNInput(model.get_submodule(name), owners[block_of(spec, name)]))
    return {name: model.get_submodule(name) for name in outputs}


class MAMMethod(PrefixMethod):
    name = "mam"

    def attach(self, model: nn.Module) -> None:
        super().attach(model)
        c = self.config
        attach_parallel_adapters(model, self.spec, c.bottleneck, c.scaling, c.adapter_dropout)

    def site_records(self, model: nn.Module) -> dict[str, dict[str, Any]]:
        records = super().site_records(model)
        for name, module in model.named_modules():
            if isinstance(module, FFNOutput):
                records[name] = {"layer": self.spec.layer_of(name), "type": "parallel_adapter",
                                 "in_features": module.in_features, "out_features": module.out_features,
                                 "bottleneck": self.config.bottleneck, "scaling": self.config.scaling}
        return records
