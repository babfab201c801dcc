"""Parallel adapters (He et al., "Towards a Unified View of Parameter-Efficient Transfer Learning", ICLR 2022,
Sec. 3 and Fig. 1(c)/Table 1: the "parallel adapter" at the FFN, scaled "Scaled PA").

With x the FFN's input (the input of its first Linear, W_1) and z' its output (of W_2),

    z' <- z' + s · (f(x W_down + b_down) W_up + b_up),        W_down: h x d, W_up: d x h, f = ReLU,

L(2hd + d + h) parameters (the same count as Pfeiffer's at the same d; DeBERTaV3-base d = 64: 1,189,632).
W_up, b_up = 0: the branch adds exactly zero at step 0. He et al. write the sequential adapter as
h <- h + f(h W_down) W_up and the parallel one as h <- h + f(x W_down) W_up, x the sub-layer's input; with
the scale s of their "scaled" variant (their released code's ``ffn_adapter_scalar``).

Choices and differences from He et al.'s code (jxhe/unify-parameter-efficient-tuning):
- s = 2 by default, their GLUE setting (``ffn_adapter_scalar=2``); their BART-large XSum runs use s = 4 and
  d = 512 (``method.scale=4 method.bottleneck=512``).
- Bottleneck default 64 (1,189,632 parameters on DeBERTaV3-base, Pfeiffer's AdaLoRA 1.2M count). AdaLoRA's
  Table 7 gives no parallel-adapter size, so the budget groups r1..r8 leave ``parallel`` out: it keeps its
  config value under a group, and a cap (budget.max_params / max_percent) searches d.
- The branch is added to W_2's output, i.e. before the block's dropout; their BART code adds it after
  ``dropout(fc2(...))``. Identical in evaluation; in training their branch escapes the block's dropout.
- W_down uses Kaiming-uniform (their ``init_option=lora``), biases and W_up zero; no adapter LayerNorm
  (their ``ffn_adapter_layernorm_option=none``), no dropout inside the adapter.
On BART: every encoder and decoder layer's FFN (``fc1`` input -> ``fc2`` output); cross-attention has none.
"""

from __future__ import annotations

import re

from torch import nn

from peftbench.methods.base import ModelSpec, freeze, replace_module
from peftbench.methods.houlsby.method import HoulsbyMethod, adapter_sites
from peftbench.methods.parallel.config import ParallelConfig
from peftbench.methods.parallel.layer import FFNInputTap, ParallelAdapter, Stash


def block_of(name: str, spec: ModelSpec) -> str:
    """The Transformer block a module belongs to (the longest dotted prefix matching the ``blocks`` role)."""
    parts = name.split(".")
    pattern = spec.roles.get("blocks")
    for end in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:end])
        if pattern and re.fullmatch(pattern, prefix):
            return prefix
    raise ValueError(f"parallel: {name} is in no Transformer block of {spec.name} (blocks role {pattern!r})")


class ParallelMethod(HoulsbyMethod):
    """Pairs each block's FFN input projection (a tap) with its output projection (the adapter)."""

    name = "parallel"
    config: ParallelConfig

    def apply(self, model: nn.Module) -> nn.Module:
        c = self.config
        in_names, out_names = (adapter_sites(model, self.spec, [t]) for t in ("ffn_in", "ffn_out"))
        inputs = {block_of(n, self.spec): n for n in in_names}
        outputs = {block_of(n, self.spec): n for n in out_names}
        if set(inputs) != set(outputs) or len(inputs) != len(in_names) or len(outputs) != len(out_names):
            raise ValueError(f"parallel: {self.spec.name} does not pair one ffn_in with one ffn_out per block")
        for block, out_name in outputs.items():
            stash = Stash()
            in_name = inputs[block]
            replace_module(model, in_name, FFNInputTap(model.get_submodule(in_name), stash))
            replace_module(model, out_name, ParallelAdapter(model.get_submodule(out_name), stash, c.bottleneck,
                                                            c.scale, c.activation, c.init, c.init_std))
        freeze(model, self.spec, backbone=self.trains_backbone_parameter)
        return model
