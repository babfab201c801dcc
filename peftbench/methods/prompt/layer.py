"""The soft prompt of prompt tuning: an l × h parameter, attached to the model as a submodule so that counting,
freezing, checkpoints and the planner find it through ``adapter_names`` like any injected module."""

from __future__ import annotations

import torch
from torch import nn


class SoftPrompt(nn.Module):
    """P ∈ R^{l×h}, the only trainable weights of prompt tuning (Lester et al. 2021, §2):
    Pr_{θ; θ_P}(Y | [P; X]) with the backbone θ frozen and only θ_P updated."""

    adapter_names = ("prompt",)

    def __init__(self, initial: torch.Tensor) -> None:
        super().__init__()
        self.prompt = nn.Parameter(initial.detach().clone())

    @property
    def num_virtual_tokens(self) -> int:
        return self.prompt.shape[0]

    def forward(self) -> torch.Tensor:
        return self.prompt


def initial_prompt(embedding: nn.Module, length: int, init: str, token_ids: list[int],
                   special_ids: set[int]) -> torch.Tensor:
    """The starting value of P.

    ``vocab``: embeddings of ``length`` distinct token ids drawn uniformly from the vocabulary without the special
    tokens the model config names (Lester et al.'s "sampled vocab" draws from the 5,000 most common tokens of
    T5's SentencePiece vocabulary; without the tokenizer's frequencies we draw from the whole vocabulary).
    ``random``: U(-0.5, 0.5) (their random baseline). ``ids``: embeddings of ``token_ids`` cycled to ``length``
    (their class-label init when given the label words, or a text). The embedding module is called, so scaled
    embeddings (BART with ``scale_embedding``) start on the scale the model expects.
    """
    weight = embedding.weight
    if init == "random":
        return torch.empty(length, weight.shape[1], dtype=weight.dtype, device=weight.device).uniform_(-0.5, 0.5)
    vocab = weight.shape[0]
    if init == "ids":
        bad = [i for i in token_ids if i >= vocab]
        if bad:
            raise ValueError(f"method.init_token_ids {bad} lie outside the vocabulary of {vocab} tokens")
        ids = torch.tensor([token_ids[i % len(token_ids)] for i in range(length)])
    else:
        candidates = torch.tensor([i for i in range(vocab) if i not in special_ids])
        if length > len(candidates):
            raise ValueError(f"method.num_virtual_tokens={length} exceeds the {len(candidates)} vocabulary tokens")
        ids = candidates[torch.randperm(len(candidates))[:length]]
    with torch.no_grad():
        return embedding(ids.to(weight.device)).detach()


def special_token_ids(config) -> set[int]:
    """The special token ids the model config names (pad, bos, eos, sep, cls, unk, mask, decoder start)."""
    names = ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id", "unk_token_id",
             "mask_token_id", "decoder_start_token_id")
    found = set()
    for name in names:
        value = getattr(config, name, None)
        found.update(value if isinstance(value, list) else [value] if isinstance(value, int) else [])
    return found
