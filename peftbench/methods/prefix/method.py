"""Prefix tuning (Li & Liang, ACL 2021): trainable keys and values prepended at every attention site.

For every attention site s (self-attention of each encoder layer; on BART also self- and cross-attention of each
decoder layer) and head i,

    head_i^s(x) = Attn(x W_Q,i, [P_K,i^s ; x W_K,i], [P_V,i^s ; x W_V,i]),   P_K^s, P_V^s ∈ R^{l×h},

with the backbone frozen. During training the prefixes are reparameterised by one MLP shared by all sites,
[P^1 ; ... ; P^S] = W_2 tanh(W_1 E + b_1) + b_2 (E ∈ R^{l×h}, width m), which Li & Liang found to stabilise
training; after training the MLP is evaluated once and dropped (``on_train_end``). Counts (S sites, h hidden):

    trainable while training  = l·h + (h·m + m) + (m·2hS + 2hS)      (+ the task head)
    effective (kept)          = 2 · l · h · S                          (+ the task head)

S = L on encoders, L_enc + 2·L_dec on BART; DeBERTaV3-base, l = 16: 2·16·768·12 = 294,912. A parameter cap binds
the effective count (``budget_binds = "effective"``), as the papers report prefix sizes without the MLP.

Mechanism (``layer.py``): the prefix is attached inside attention, not through ``past_key_values``; it adds no
input positions, so ``prepare_inputs`` leaves the batch alone and ``virtual_tokens() == 0`` (QA span labels are
unaffected). Padding stays masked (the prefix columns are always visible, padded keys never), BART's decoder stays
causal over real tokens, and cached generation equals the uncached forward (the prefix is not stored in the cache).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from peftbench.methods.base import Method, ModelSpec, adapter_parameters, count_parameters, freeze
from peftbench.methods.prefix.config import PrefixConfig
from peftbench.methods.prefix.layer import (
    ENCODER_NAME,
    PrefixEncoder,
    ReparamPrefixSite,
    attach_prefixes,
    fold_reparameterisation,
    prefix_sites,
    prefix_value_count,
    site_kind,
)


class PrefixMethod(Method):
    """Prefix tuning; subclasses (P-tuning v2, MAM) change the parameterisation or add modules in ``attach``."""

    name = "prefix"
    reparameterize_prefix = True  # class default; configs with a ``reparameterize`` field decide

    def __init__(self, config: Any, spec: ModelSpec) -> None:
        super().__init__(config, spec)
        self.removed_after_training = 0

    # -- injection --------------------------------------------------------------------------------
    def attach(self, model: nn.Module) -> None:
        c = self.config
        attach_prefixes(model, self.spec, c.num_virtual_tokens,
                        reparameterize=getattr(c, "reparameterize", self.reparameterize_prefix),
                        width=getattr(c, "encoder_width", 0), dropout=c.dropout,
                        init_std=getattr(c, "init_std", 1.0))

    def apply(self, model: nn.Module) -> nn.Module:
        self.attach(model)
        freeze(model, self.spec)
        return model

    def virtual_tokens(self) -> int:
        """0: the prefixes extend each attention's keys and values, never the input sequence, so outputs keep the
        input's length and extractive-QA span labels need no shift (``prepare_inputs`` stays the identity)."""
        return 0

    # -- optimisation -----------------------------------------------------------------------------
    def param_groups(self, model: nn.Module, weight_decay: float) -> list[dict]:
        """The trainer's AdamW groups; with ``method.lr`` set, the method's own parameters get that lr (the head
        keeps the trainer's)."""
        if getattr(self.config, "lr", None) is None:
            return super().param_groups(model, weight_decay)
        own = set(adapter_parameters(model))
        params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        groups = []
        for mine in (True, False):
            for decayed in (True, False):
                chosen = [p for n, p in params if (n in own) == mine and (p.dim() >= 2) == decayed]
                if chosen:
                    group = {"params": chosen, "weight_decay": weight_decay if decayed else 0.0}
                    groups.append({**group, "lr": self.config.lr} if mine else group)
        return groups

    # -- counts and records -----------------------------------------------------------------------
    def planned_effective_parameters(self, model: nn.Module) -> int:
        """Prefix values 2·l·h per site plus any other adapter module (MAM's FFN adapters); MLP excluded."""
        encoder = getattr(model, ENCODER_NAME, None)
        encoder_count = encoder.parameter_count() if isinstance(encoder, PrefixEncoder) else 0
        direct = sum(s.kv.numel() for s in prefix_sites(model).values() if not isinstance(s, ReparamPrefixSite))
        declared = sum(p.numel() for p in adapter_parameters(model).values())
        return declared - encoder_count - direct + prefix_value_count(model)

    def effective_parameters(self, model: nn.Module) -> int:
        return self.planned_effective_parameters(model) + count_parameters(model, self.spec)["head"]

    def site_records(self, model: nn.Module) -> dict[str, dict[str, Any]]:
        """One entry per attention site (the run's ``matrices`` record): block, site kind, width, prefix length."""
        records = {}
        for name, site in prefix_sites(model).items():
            module = name.rpartition(".")[0]
            records[module] = {"layer": self.spec.layer_of(module), "type": site_kind(self.spec, module),
                               "in_features": site.hidden, "out_features": site.hidden, "prefix_length": site.length}
        return records

    def on_train_end(self, model: nn.Module) -> dict[str, Any]:
        encoder = getattr(model, ENCODER_NAME, None)
        mlp = encoder.parameter_count() if isinstance(encoder, PrefixEncoder) else 0
        records: dict[str, Any] = {"matrices": self.site_records(model), "sites": len(prefix_sites(model)),
                                   "prefix_length": self.config.num_virtual_tokens,
                                   "prefix_values": prefix_value_count(model), "reparameterization_mlp": mlp}
        self.removed_after_training = fold_reparameterisation(model)
        return records


__all__ = ["PrefixConfig", "PrefixMethod"]
