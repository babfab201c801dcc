"""Prompt tuning settings. Defaults: l = 20 virtual tokens (Lester et al. 2021, Fig. 3a: gains flatten beyond 20
tokens for all but the smallest models), initialised from the embeddings of sampled vocabulary tokens, trained at
``prompt_lr`` = 3e-2 (see ``peftbench/methods/prompt/__init__.py`` for why the shared lr is too small)."""

from __future__ import annotations

from dataclasses import dataclass, field

PROMPT_INITS = ("vocab", "random", "ids")


@dataclass
class PromptConfig:
    num_virtual_tokens: int = field(default=20, metadata={"help": "l: soft prompt vectors prepended to the input"})
    init: str = field(default="vocab", metadata={
        "help": "vocab: embeddings of l distinct sampled vocabulary tokens (Lester's 'sampled vocab'); random: "
                "U(-0.5, 0.5) (Lester's random baseline); ids: embeddings of init_token_ids (a text, class labels)"})
    init_token_ids: list[int] = field(default_factory=list, metadata={
        "help": "token ids for init=ids, cycled to length l (e.g. the tokenised class names or a task text)"})
    prompt_lr: float | None = field(default=3.0e-2, metadata={
        "help": "learning rate of the prompt parameters; null = trainer.lr (the head always uses trainer.lr)"})

    def __post_init__(self) -> None:
        self.init_token_ids = [int(i) for i in self.init_token_ids]  # Hydra hands over a ListConfig
        check_common(self.num_virtual_tokens, self.prompt_lr, "prompt")
        if self.init not in PROMPT_INITS:
            raise ValueError(f"method.init must be one of {list(PROMPT_INITS)}, got {self.init!r}")
        if self.init == "ids" and not self.init_token_ids:
            raise ValueError("method.init=ids needs method.init_token_ids (a non-empty list of token ids)")
        if any(i < 0 for i in self.init_token_ids):
            raise ValueError(f"method.init_token_ids must be non-negative token ids, got {self.init_token_ids}")


def check_common(num_virtual_tokens: int, prompt_lr: float | None, name: str) -> None:
    if num_virtual_tokens < 1:
        raise ValueError(f"method.num_virtual_tokens must be >= 1, got {num_virtual_tokens} ({name})")
    if prompt_lr is not None and not prompt_lr > 0:
        raise ValueError(f"method.prompt_lr must be > 0 or null, got {prompt_lr} ({name})")
