"""P-tuning v2 settings (Liu et al., ACL 2022). Defaults: prefix length 16 and dropout 0.1 (the official code
applies the backbone's hidden dropout to the prefix); the paper's GLUE/SuperGLUE learning rates are 5e-3 to 1e-2
(RoBERTa-large), far above LoRA's: ``lr`` sets the prefix's own learning rate, null = trainer.lr."""

from __future__ import annotations

from dataclasses import dataclass, field

from peftbench.methods.prefix.config import check_prefix


@dataclass
class PTuningV2Config:
    num_virtual_tokens: int = field(
        default=16, metadata={"help": "l: prefix keys/values per attention site (a budget's knobs.ptuning_v2)"})
    dropout: float = field(default=0.1, metadata={"help": "dropout on the prefix keys/values (official code: 0.1)"})
    lr: float | None = field(default=None, metadata={"help": "learning rate of the prefixes; null = trainer.lr"})

    def __post_init__(self) -> None:
        check_prefix("ptuning_v2", self.num_virtual_tokens, 1, self.dropout, self.lr)
