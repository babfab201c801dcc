"""Prefix-tuning settings (Li & Liang, ACL 2021). Defaults: their code's MLP width 512 and no prefix dropout; the
prefix length 16 is the GLUE length He et al. (ICLR 2022) use. Trainer settings (lr, schedule) live in
``conf/trainer``; ``lr`` here gives the prefix parameters their own learning rate (the head keeps the trainer's)."""

from __future__ import annotations

from dataclasses import dataclass, field


def check_prefix(name: str, length: int, width: int, dropout: float, lr: float | None) -> None:
    if length < 1:
        raise ValueError(f"{name}: num_virtual_tokens must be >= 1, got {length}")
    if width < 1:
        raise ValueError(f"{name}: encoder_width must be >= 1, got {width}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{name}: dropout must be in [0, 1), got {dropout}")
    if lr is not None and lr <= 0:
        raise ValueError(f"{name}: lr must be > 0 or null (= the trainer's lr), got {lr}")


@dataclass
class PrefixConfig:
    num_virtual_tokens: int = field(
        default=16, metadata={"help": "l: prefix keys/values per attention site (a budget's knobs.prefix sets it)"})
    reparameterize: bool = field(
        default=True, metadata={"help": "train through the MLP Embedding(l,h)->Linear(h,m)->tanh->Linear(m,2hS), "
                                        "folded into plain prefixes after training (Li & Liang); false = direct"})
    encoder_width: int = field(default=512, metadata={"help": "m: hidden width of the reparameterisation MLP"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the prefix keys/values"})
    lr: float | None = field(default=None, metadata={"help": "lr of the prefix parameters; null = trainer.lr"})

    def __post_init__(self) -> None:
        check_prefix("prefix", self.num_virtual_tokens, self.encoder_width, self.dropout, self.lr)
