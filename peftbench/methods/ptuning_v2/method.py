"""P-tuning v2 (Liu et al., ACL 2022): deep prompt tuning = per-layer prefixes trained directly, with the task's
classification/QA head on top of the backbone (no verbaliser).

Every attention site s and head i attend over [P_K,i^s ; K_i] and [P_V,i^s ; V_i] with P_K^s, P_V^s ∈ R^{l×h}
trainable parameters (N(0, σ²) init, σ = ``init_std``, 1 as the official ``nn.Embedding(l, 2·h·L)``) and no
reparameterisation, so trainable = effective = 2·l·h·S (+ head): DeBERTaV3-base, l = 16 → 294,912. The mechanism
(inside attention, no ``past_key_values``, no added input positions: ``virtual_tokens() == 0``) is prefix
tuning's: ``peftbench/methods/prefix/layer.py``.
"""

from __future__ import annotations

from peftbench.methods.prefix.method import PrefixMethod


class PTuningV2Method(PrefixMethod):
    name = "ptuning_v2"
    reparameterize_prefix = False
