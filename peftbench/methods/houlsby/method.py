"""Houlsby adapters (Houlsby et al., "Parameter-Efficient Transfer Learning for NLP", ICML 2019).

Two adapters per Transformer block, each right after a sub-layer's output projection (Sec. 2.1, Fig. 2): with
z = W_o · Attention(x) + b_o and z' = W_2 f_ffn(W_1 y + b_1) + b_2,

    y  = LayerNorm(x + Dropout(z  + A_1(z))),        A(z) = W_up f(W_down z + b_down) + b_up
    y' = LayerNorm(y + Dropout(z' + A_2(z'))),

W_down: d x h, W_up: h x d, 2hd + d + h parameters per adapter, 2L(2hd + d + h) in all (DeBERTaV3-base:
d = 8 / 16 / 32 -> 313,536 / 608,640 / 1,198,848; AdaLoRA Table 1 prints 0.31M / 0.61M / 1.22M, and no count
formula gives 1.22M). The paper numbers no equations; the ones above restate Fig. 2. W_up, b_up = 0 make
A = 0 at step 0 (the paper's near-identity init draws W_up small instead; zero is exact identity).

Where this differs from the sources, on purpose and configurable where it matters:
- Nonlinearity: ``swish`` by default, as AdaLoRA's HAdapter baseline (its DeBERTaV2 code builds
  ``Adapter(hidden, adapter_size, 'swish')``). Houlsby's released code (adapter-bert) uses GELU
  (``activation=gelu``); the paper does not name one.
- Placement: we wrap the output projection, so the adapter sits before the block's dropout. Houlsby's code and
  AdaLoRA's apply dropout first (``Adapter(Dropout(z))``); outputs are identical in evaluation, only where the
  training-time dropout noise falls differs.
- LayerNorm: Houlsby trains every LayerNorm per task as well (``train_layernorm=true``); AdaLoRA's #Params
  count the adapters only, which is our default.
- BART (encoder-decoder): an adapter after the self-attention output and after the FFN output of every
  encoder and decoder layer; none after cross-attention (``encoder_attn``), whose output projection matches
  the ``attention_output`` regex too and is excluded through the spec's ``cross_attention`` role.
"""

from __future__ import annotations

import re

from torch import nn

from peftbench.methods.base import Method, ModelSpec, freeze, replace_module
from peftbench.methods.houlsby.config import HoulsbyConfig
from peftbench.methods.houlsby.layer import SequentialAdapter


def adapter_sites(model: nn.Module, spec: ModelSpec, types: list[str] | tuple[str, ...]) -> list[str]:
    """The ``nn.Linear`` modules of the given matrix types, in model order, without cross-attention ones
    (adapters go after self-attention and the FFN only)."""
    missing = [t for t in types if t not in spec.targets]
    if missing:
        raise ValueError(f"model {spec.name} defines no matrix type {missing} (peftbench/models/roles.py)")
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    cross = spec.roles.get("cross_attention")
    chosen = set()
    for matrix_type in types:
        chosen.update(spec.modules_of(matrix_type, linears))
    names = [n for n in linears if n in chosen and not (cross and re.fullmatch(f"(?:{cross})\\..*", n))]
    if not names:
        raise ValueError(f"no nn.Linear in {spec.name} is of the types {list(types)}")
    return names


class HoulsbyMethod(Method):
    name = "houlsby"
    config: HoulsbyConfig

    def __init__(self, config: HoulsbyConfig, spec: ModelSpec) -> None:
        super().__init__(config, spec)
        norms = spec.roles.get("norms")
        self._norms = re.compile(f"(?:{norms})\\.[^.]+") if norms else None

    def apply(self, model: nn.Module) -> nn.Module:
        c = self.config
        for name in adapter_sites(model, self.spec, c.target_types):
            base = model.get_submodule(name)
            replace_module(model, name, SequentialAdapter(base, c.bottleneck, c.activation, c.init, c.init_std))
        freeze(model, self.spec, backbone=self.trains_backbone_parameter)
        return model

    def trains_backbone_parameter(self, name: str) -> bool:
        """LayerNorm weights and biases when ``train_layernorm`` is set (Houlsby et al., Sec. 2.1)."""
        return bool(self.config.train_layernorm and self._norms is not None and self._norms.fullmatch(name))
