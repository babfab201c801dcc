"""The input seam shared by the input-level prompt methods (prompt tuning, P-tuning v1).

Given the l × h virtual token embeddings P (a parameter, or a prompt encoder's output), every batch becomes

    inputs_embeds  = [P; E(x)]          E = model.get_input_embeddings(), the model's own (scaled) embedding
    attention_mask = [1_l; m]           token_type_ids = [0_l; t]           input_ids removed

Architecture rules (checked in :func:`position_limit` at apply time and per batch in :func:`prepend`):

- Absolute positions (BERT, RoBERTa, DeBERTa with ``position_biased_input``, BART's learned positions): the
  virtual tokens take the first l positions, so l + input length must fit the position table (RoBERTa's usable
  length is ``max_position_embeddings - pad_token_id - 1``). With ``inputs_embeds`` RoBERTa numbers positions
  sequentially (it cannot see padding), which equals its padding-aware numbering for right-padded batches.
- DeBERTa-v2/v3 without absolute positions: relative (bucketed) positions only, no length limit; the virtual
  tokens simply sit at relative distances 1..l before the first token.
- Encoder-decoder models (BART, ``EncoderDecoderModel``): the prompt goes in front of the *encoder* input only.
  The encoder runs here on ``inputs_embeds`` and the batch keeps ``input_ids`` next to ``encoder_outputs``, so
  that BART's classification head still finds ``<eos>`` in ``input_ids``, BART's QA and classification heads
  still build ``decoder_input_ids`` by shifting ``input_ids``, and ``generate`` uses the given encoder outputs
  (it expands them for beams). The extended attention mask is the cross-attention mask. The decoder sees the
  plain input, so logits are *not* shifted: :func:`output_shift` is 0 there.
- Extractive QA on encoder-only models: logits gain l leading positions, so ``start_positions``/``end_positions``
  are shifted by l here (the family's ``predict`` drops the first ``virtual_tokens()`` logits).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

SHIFTED_LABELS = ("start_positions", "end_positions")


def is_encoder_decoder(model: nn.Module) -> bool:
    return bool(getattr(model.config, "is_encoder_decoder", False))


def encoder_config(model: nn.Module) -> Any:
    config = model.config
    return getattr(config, "encoder", None) if is_encoder_decoder(model) and hasattr(config, "encoder") else config


def position_limit(model: nn.Module) -> int | None:
    """Longest input (virtual tokens included) the embedding's absolute positions allow; None when unlimited."""
    config = encoder_config(model)
    model_type = getattr(config, "model_type", "")
    maximum = getattr(config, "max_position_embeddings", None)
    if maximum is None:
        return None
    if model_type == "deberta-v2" and not getattr(config, "position_biased_input", True):
        return None  # relative positions only
    if model_type in ("roberta", "xlm-roberta", "camembert"):
        return maximum - (config.pad_token_id or 0) - 1  # positions start after padding_idx
    return maximum


def output_shift(model: nn.Module, length: int) -> int:
    """Positions the model's per-token outputs gain in front: l on encoder-only models, 0 on encoder-decoder
    models (their per-token outputs come from the decoder, which reads the plain input)."""
    return 0 if is_encoder_decoder(model) else length


def check_length(name: str, length: int, model: nn.Module) -> None:
    """Apply-time check: the virtual tokens alone must leave room in the position table."""
    limit = position_limit(model)
    if limit is not None and length >= limit:
        raise ValueError(f"{name}: num_virtual_tokens={length} leaves no room in {encoder_config(model).model_type}'s "
                         f"{limit} positions; use fewer virtual tokens")


INSERT_AT = 1  # encoder-only models: the prompt goes after the first token ([CLS] / <s>)


def insert(name: str, model: nn.Module, batch: dict[str, Any], prompt: torch.Tensor) -> dict[str, Any]:
    """The batch with the l × h ``prompt`` inserted into every input (see the module docstring).

    Encoder-only models get it right after the first token: their classification heads (and SQuAD v2's null
    answer) read position 0, and a virtual token there has an input-independent embedding, so its final state
    barely depends on the sentence. Measured on the shortened learning check (MiniLM, 64 steps): prompt tuning
    and P-tuning with the prompt at position 0 ended at 0.525 validation accuracy, chance. Encoder-decoder models
    get it in front of the encoder input (their heads read the decoder)."""
    if "input_ids" not in batch:
        raise ValueError(f"{name}: prepare_inputs needs input_ids in the batch, got {sorted(batch)}")
    if "position_ids" in batch:
        raise ValueError(f"{name}: batches with explicit position_ids are not supported by prompt methods")
    ids = batch["input_ids"]
    count, length = ids.shape[0], prompt.shape[0]
    limit = position_limit(model)
    if limit is not None and ids.shape[1] + length > limit:
        raise ValueError(f"{name}: {length} virtual tokens + {ids.shape[1]} input tokens exceed "
                         f"{encoder_config(model).model_type}'s {limit} positions; lower task.max_length to "
                         f"{limit - length} or method.num_virtual_tokens")
    at = 0 if is_encoder_decoder(model) else INSERT_AT
    tokens = model.get_input_embeddings()(ids)
    embeds = _spliced(tokens, prompt.to(tokens.dtype).unsqueeze(0).expand(count, -1, -1), at)
    mask = batch.get("attention_mask")
    mask = torch.ones_like(ids) if mask is None else mask
    mask = _spliced(mask, mask.new_ones(count, length), at)
    encoder_inputs = {"inputs_embeds": embeds, "attention_mask": mask}
    if batch.get("token_type_ids") is not None:
        types = batch["token_type_ids"]
        encoder_inputs["token_type_ids"] = _spliced(types, types.new_zeros(count, length), at)
    out = {k: v for k, v in batch.items() if k not in ("input_ids", "token_type_ids", "attention_mask")}
    if is_encoder_decoder(model):
        if "encoder_outputs" in batch:
            raise ValueError(f"{name}: the batch already carries encoder_outputs")
        encoder_outputs = model.get_encoder()(**encoder_inputs, return_dict=True)
        return {**out, "input_ids": ids, "attention_mask": mask, "encoder_outputs": encoder_outputs}
    for key in SHIFTED_LABELS:  # token positions at or after the insertion point move by l
        if key in out:
            out[key] = torch.where(out[key] >= at, out[key] + length, out[key])
    return {**out, **encoder_inputs}


def _spliced(values: torch.Tensor, inserted: torch.Tensor, at: int) -> torch.Tensor:
    """``values`` (batch, n, ...) with ``inserted`` (batch, l, ...) placed before position ``at``."""
    return torch.cat([values[:, :at], inserted, values[:, at:]], dim=1)
