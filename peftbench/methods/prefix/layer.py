"""Per-layer prefixes inside attention (math and wiring only; shared by prefix, ptuning_v2 and mam).

Every attention site s (a self-attention module; on BART also every decoder cross-attention) gets l key vectors
P_K^s and l value vectors P_V^s in R^{l×h} (h = heads × head size), prepended to that layer's keys and values:

    head_i = softmax( q_i [P_K,i ; K_i]^T / sqrt(d) + [0 ; M] ) [P_V,i ; V_i]

where P_K,i / P_V,i are the head-i columns of the prefix and M is the model's own mask (padding, causality) over
the real keys: the l prefix positions are always visible, to every query (also in BART's causal decoder), while
real keys stay masked exactly as before. Queries are unchanged, so no input position is added: the output has the
input's length (``virtual_tokens() == 0``; extractive-QA span labels need no shift).

Why not ``past_key_values``: under transformers 5 peft's prefix tuning fails on every encoder, RoBERTa shifts its
position ids by the cache length, DeBERTa-v2 ignores any cache, and on BART a cache reaches the decoder
self-attention only. So the prefix is attached in the attention itself:

- BERT, RoBERTa, BART call a pluggable attention function (``transformers.AttentionInterface``). We register
  :func:`prefix_attention_forward` under the name ``peftbench_prefix`` and switch the model to it; it reads the
  site's prefix from ``module.prefix``, concatenates it in front of the keys/values it is handed (for a cached
  decoder step these are the cache's keys: the prefix is never written into the cache, so cached generation adds
  it exactly once per layer and step) and puts l visible columns in front of the mask, then runs PyTorch's
  scaled-dot-product attention. The same name is registered with ``transformers.masking_utils.
  AttentionMaskInterface`` (an unregistered name makes RoBERTa/BART pass ``attention_mask=None`` and attend
  padding) with a mask builder that always materialises causal masks (SDPA's ``is_causal`` shortcut would align a
  causal mask to the top-left corner once the key sequence is longer than the queries).
- DeBERTa-v2's ``DisentangledSelfAttention`` has no attention interface and adds c2p/p2c relative-position bias.
  :class:`PrefixDisentangledSelfAttention` (the module's class is swapped; weights and names stay) computes the
  real keys' scores exactly as DeBERTa does and gives the prefix keys content scores q·P_K / sqrt(d · scale_factor)
  only, with zero relative bias (as P-tuning v2's DeBERTa code and adapter-hub do).

Parameterisations of the prefix values (a tensor (2, l, h) per site: keys, then values):
- direct (:class:`PrefixSite`, P-tuning v2): the values are the trainable parameters, N(0, σ²) initialised
  (σ = 1: P-tuning v2's ``nn.Embedding``; ``init_std`` sets σ).
- reparameterised (:class:`ReparamPrefixSite` reading a shared :class:`PrefixEncoder`, Li & Liang 2021, Sec. 4.3):
  [P^1 ; ... ; P^S] = W_2 tanh(W_1 E + b_1) + b_2 with E ∈ R^{l×h} (an ``nn.Embedding(l, h)``), W_1 ∈ R^{m×h},
  W_2 ∈ R^{2·h·S×m}; site s reads rows [2hs, 2h(s+1)) of W_2, so each site costs one slice of the last matmul. After
  training :func:`fold_reparameterisation` evaluates the MLP once and stores the values as direct prefixes: the
  MLP (l·h + h·m + m + m·2hS + 2hS parameters) is dropped, 2·l·h·S remain.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
from transformers.models.deberta_v2.modeling_deberta_v2 import DisentangledSelfAttention, scaled_size_sqrt

ATTENTION_NAME = "peftbench_prefix"
ENCODER_NAME = "prefix_encoder"  # the shared reparameterisation MLP, a child of the root model while training


# --- the sites' prefix values ----------------------------------------------------------------------------


class _Site(nn.Module, ABC):
    """What an attention module holds under ``.prefix``: l keys and values for its heads."""

    def __init__(self, length: int, heads: int, head_size: int, dropout: float) -> None:
        super().__init__()
        self.length, self.heads, self.head_size = length, heads, head_size
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    @property
    def hidden(self) -> int:
        return self.heads * self.head_size

    @abstractmethod
    def values(self) -> torch.Tensor:
        """(2, l, h): keys then values."""

    def key_value(self, batch: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values shaped like the attention's: (batch, heads, l, head_size)."""
        kv = self.dropout(self.values()).to(dtype)
        kv = kv.view(2, self.length, self.heads, self.head_size).permute(0, 2, 1, 3)  # (2, H, l, d)
        return kv[0].unsqueeze(0).expand(batch, -1, -1, -1), kv[1].unsqueeze(0).expand(batch, -1, -1, -1)


class PrefixSite(_Site):
    """Direct prefix values (P-tuning v2; also every site after the reparameterisation is folded)."""

    adapter_names = ("kv",)

    def __init__(self, length: int, heads: int, head_size: int, dropout: float = 0.0, *, init_std: float = 1.0,
                 device: Any = None, dtype: Any = None, values: torch.Tensor | None = None) -> None:
        super().__init__(length, heads, head_size, dropout)
        if values is None:  # init_std 1: nn.Embedding's N(0, 1), as P-tuning v2's code
            values = init_std * torch.randn(2, length, heads * head_size, device=device, dtype=dtype)
        self.kv = nn.Parameter(values)

    def values(self) -> torch.Tensor:
        return self.kv


class PrefixEncoder(nn.Module):
    """Li & Liang's reparameterisation, shared by all S sites: Embedding(l, h) -> Linear(h, m) -> tanh ->
    Linear(m, 2·h·S). Lives on the root model as ``prefix_encoder`` while training."""

    adapter_names = ("embedding", "down", "up")

    def __init__(self, length: int, model_hidden: int, width: int, site_hidden: int, sites: int, *,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.length, self.site_hidden, self.sites = length, site_hidden, sites
        self.embedding = nn.Embedding(length, model_hidden, device=device, dtype=dtype)
        self.down = nn.Linear(model_hidden, width, device=device, dtype=dtype)
        self.up = nn.Linear(width, 2 * site_hidden * sites, device=device, dtype=dtype)

    def site_values(self, index: int) -> torch.Tensor:
        """(2, l, h) of site ``index``: rows [2h·index, 2h·(index + 1)) of the last layer."""
        hidden = torch.tanh(self.down(self.embedding.weight))  # (l, m)
        rows = slice(2 * self.site_hidden * index, 2 * self.site_hidden * (index + 1))
        out = nn.functional.linear(hidden, self.up.weight[rows], self.up.bias[rows])  # (l, 2h)
        return out.view(self.length, 2, self.site_hidden).transpose(0, 1)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


class ReparamPrefixSite(_Site):
    """A site whose values come from the shared :class:`PrefixEncoder` (held without registering it twice)."""

    adapter_names = ()  # the encoder's parameters are declared once, on the encoder

    def __init__(self, encoder: PrefixEncoder, index: int, heads: int, head_size: int, dropout: float = 0.0):
        super().__init__(encoder.length, heads, head_size, dropout)
        self.index = index
        object.__setattr__(self, "_encoder", encoder)  # a plain reference, not a submodule

    def values(self) -> torch.Tensor:
        return self._encoder.site_values(self.index)


# --- attention with a prefix: BERT, RoBERTa, BART ---------------------------------------------------------


def _with_prefix_columns(mask: torch.Tensor, length: int) -> torch.Tensor:
    """l always-visible columns in front of a boolean (True = attend) or additive (0 = attend) mask."""
    pad = mask.new_ones(*mask.shape[:-1], length) if mask.dtype == torch.bool else mask.new_zeros(
        *mask.shape[:-1], length)
    return torch.cat([pad, mask], dim=-1)


def prefix_attention_forward(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                             attention_mask: torch.Tensor | None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """Scaled-dot-product attention over [prefix ; keys] with the mask [visible ; mask]."""
    site = getattr(module, "prefix", None)
    if isinstance(site, _Site) and site.length > 0:
        q_len, kv_len = query.shape[2], key.shape[2]
        causal = kwargs.pop("is_causal", None)
        causal = getattr(module, "is_causal", False) if causal is None else causal
        if attention_mask is None and causal and q_len > 1:  # bottom-right aligned causal mask over real keys
            attention_mask = torch.ones(q_len, kv_len, dtype=torch.bool, device=query.device).tril(kv_len - q_len)
            attention_mask = attention_mask[None, None]
        prefix_key, prefix_value = site.key_value(query.shape[0], key.dtype)
        key, value = torch.cat([prefix_key, key], dim=2), torch.cat([prefix_value, value], dim=2)
        if attention_mask is not None:
            attention_mask = _with_prefix_columns(attention_mask, site.length)
        kwargs["is_causal"] = False
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def prefix_attention_mask(*args: Any, **kwargs: Any) -> torch.Tensor | None:
    """SDPA's boolean masks, never skipped for causal attention (see the module docstring)."""
    kwargs["allow_is_causal_skip"] = False
    return sdpa_mask(*args, **kwargs)


AttentionInterface.register(ATTENTION_NAME, prefix_attention_forward)
AttentionMaskInterface.register(ATTENTION_NAME, prefix_attention_mask)


# --- attention with a prefix: DeBERTa-v2 ------------------------------------------------------------------


class PrefixDisentangledSelfAttention(DisentangledSelfAttention):
    """DeBERTa-v2 disentangled attention with prefix keys that get content scores only (zero c2p/p2c bias)."""

    def forward(self, hidden_states, attention_mask, output_attentions=False, query_states=None,
                relative_pos=None, rel_embeddings=None):
        site = getattr(self, "prefix", None)
        if not isinstance(site, _Site) or site.length == 0:
            return super().forward(hidden_states, attention_mask, output_attentions, query_states, relative_pos,
                                   rel_embeddings)
        if query_states is None:
            query_states = hidden_states
        heads = self.num_attention_heads
        query_layer = self.transpose_for_scores(self.query_proj(query_states), heads)  # (B·H, n, d)
        key_layer = self.transpose_for_scores(self.key_proj(hidden_states), heads)
        value_layer = self.transpose_for_scores(self.value_proj(hidden_states), heads)
        scale_factor = 1 + ("c2p" in self.pos_att_type) + ("p2c" in self.pos_att_type)
        scale = scaled_size_sqrt(query_layer, scale_factor).to(dtype=query_layer.dtype)
        scores = torch.bmm(query_layer, key_layer.transpose(-1, -2) / scale)
        if self.relative_attention:
            rel_embeddings = self.pos_dropout(rel_embeddings)
            scores = scores + self.disentangled_attention_bias(query_layer, key_layer, relative_pos, rel_embeddings,
                                                               scale_factor)
        batch = hidden_states.shape[0]
        prefix_key, prefix_value = site.key_value(batch, query_layer.dtype)  # (B, H, l, d)
        prefix_key = prefix_key.reshape(batch * heads, site.length, -1)
        prefix_value = prefix_value.reshape(batch * heads, site.length, -1)
        prefix_scores = torch.bmm(query_layer, prefix_key.transpose(-1, -2) / scale)  # content only
        scores = torch.cat([prefix_scores, scores], dim=-1)
        scores = scores.view(-1, heads, scores.size(-2), scores.size(-1))
        mask = _with_prefix_columns(attention_mask.bool(), site.length)
        scores = scores.masked_fill(~mask, torch.finfo(query_layer.dtype).min)
        probs = self.dropout(nn.functional.softmax(scores, dim=-1))
        context = torch.bmm(probs.view(-1, probs.size(-2), probs.size(-1)), torch.cat([prefix_value, value_layer], 1))
        context = context.view(-1, heads, context.size(-2), context.size(-1)).permute(0, 2, 1, 3).contiguous()
        context = context.view(context.size()[:-2] + (-1,))
        return (context, probs if output_attentions else None)


# --- wiring -----------------------------------------------------------------------------------------------


def attention_sites(model: nn.Module, spec: Any) -> list[str]:
    """Qualified names of the attention modules that get a prefix: every self-attention module, and on
    encoder-decoder models every cross-attention module, in model order."""
    patterns = [p for p in (spec.roles.get("self_attention"), spec.roles.get("cross_attention")) if p]
    names = [n for n, _ in model.named_modules() if any(re.fullmatch(p, n) for p in patterns)]
    if not names:
        raise ValueError(f"no attention module of {spec.name} matches the roles {patterns}")
    return names


def head_shape(module: nn.Module) -> tuple[int, int]:
    """(heads, head size) of an attention module (BERT/RoBERTa/DeBERTa or BART naming)."""
    heads = getattr(module, "num_attention_heads", None) or getattr(module, "num_heads", None)
    size = getattr(module, "attention_head_size", None) or getattr(module, "head_dim", None)
    if not heads or not size:
        raise ValueError(f"{type(module).__name__}: cannot read the number of heads and the head size")
    return int(heads), int(size)


def site_kind(spec: Any, name: str) -> str:
    cross = spec.roles.get("cross_attention")
    if cross and re.fullmatch(cross, name):
        return "cross_attention"
    return "decoder_self_attention" if ".decoder." in f".{name}" else "self_attention"


def enable_prefix_attention(model: nn.Module, sites: dict[str, nn.Module]) -> None:
    """Route every site's attention through the prefix code: swap DeBERTa-v2's class, or switch a model that
    uses the attention interface to ``peftbench_prefix``."""
    interface = [m for m in sites.values() if not isinstance(m, DisentangledSelfAttention)]
    for module in sites.values():
        if isinstance(module, DisentangledSelfAttention):
            module.__class__ = PrefixDisentangledSelfAttention
    if not interface:
        return
    config = getattr(model, "config", None)
    current = getattr(config, "_attn_implementation", None)
    if current == ATTENTION_NAME:
        return
    if current not in ("sdpa", "eager", None):
        raise ValueError(f"prefix attention replaces sdpa/eager attention; the model uses {current!r}")
    model.set_attn_implementation(ATTENTION_NAME)
    if any(getattr(getattr(m, "config", None), "_attn_implementation", None) != ATTENTION_NAME for m in interface):
        raise ValueError("could not switch every attention module to the prefix attention implementation")


def attach_prefixes(model: nn.Module, spec: Any, length: int, *, reparameterize: bool, width: int,
                    dropout: float, init_std: float = 1.0) -> dict[str, _Site]:
    """Give every attention site of ``model`` a prefix of ``length``; return the sites by module name.
    ``init_std``: standard deviation of direct prefix values (unused with the reparameterisation)."""
    names = attention_sites(model, spec)
    modules = {n: model.get_submodule(n) for n in names}
    shapes = {n: head_shape(m) for n, m in modules.items()}
    reference = next(iter(model.parameters()))
    device, dtype = reference.device, reference.dtype
    sites: dict[str, _Site] = {}
    if reparameterize:
        hiddens = {h * d for h, d in shapes.values()}
        if len(hiddens) != 1:
            raise ValueError(f"reparameterised prefixes need one attention width across sites, got {sorted(hiddens)}")
        encoder = PrefixEncoder(length, spec.dims.hidden, width, hiddens.pop(), len(names), device=device,
                                dtype=dtype)
        setattr(model, ENCODER_NAME, encoder)
        for index, name in enumerate(names):
            sites[name] = ReparamPrefixSite(encoder, index, *shapes[name], dropout=dropout)
    else:
        for name in names:
            sites[name] = PrefixSite(length, *shapes[name], dropout, init_std=init_std, device=device, dtype=dtype)
    for name, site in sites.items():
        modules[name].prefix = site
    enable_prefix_attention(model, modules)
    return sites


def prefix_sites(model: nn.Module) -> dict[str, _Site]:
    """Every prefix holder by qualified name (``<attention module>.prefix``)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, _Site)}


@torch.no_grad()
def fold_reparameterisation(model: nn.Module) -> int:
    """Evaluate the shared MLP once, store each site's values as a direct prefix and drop the MLP (Li & Liang:
    only the prefix values are kept). Returns the number of parameters removed (0 if there was no MLP)."""
    encoder = getattr(model, ENCODER_NAME, None)
    if not isinstance(encoder, PrefixEncoder):
        return 0
    for name, site in prefix_sites(model).items():
        if isinstance(site, ReparamPrefixSite):
            dropout = site.dropout.p if isinstance(site.dropout, nn.Dropout) else 0.0
            direct = PrefixSite(site.length, site.heads, site.head_size, dropout,
                                values=site.values().detach().clone())
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, direct)
    removed = encoder.parameter_count()
    delattr(model, ENCODER_NAME)
    return removed


def prefix_value_count(model: nn.Module) -> int:
    """2 · l · h summed over the sites: the prefix values that remain after training."""
    return sum(2 * s.length * s.hidden for s in prefix_sites(model).values())
