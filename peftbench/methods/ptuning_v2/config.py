"""P-tuning v2 settings (Liu et al., ACL 2022). Defaults: prefix length 16 and dropout 0.1 (the official code
applies the backbone's hidden dropout to the prefix); the paper's GLUE/SuperGLUE learning rates are 5e-3 to 1e-2
(RoBERTa-large), far above LoRA's: ``lr`` sets the prefix's own learning rate, null = trainer.lr. ``init_std``
scales the official N(0, 1) init: on MiniLM, N(0, 1) keys/values (norm ~19.6 per token) are over twice the model's
own (~8.7), see ``conf/method_hparams/quick/ptuning_v2_rotten_tomatoes.yaml``."""

from __future__ import annotations

from dataclasses import dataclass, field

from peftbench.methods.prefix.config import check_prefix


@dataclass
class PTuningV2Config:
    num_virtual_tokens: int = field(
        default=16, metadata={"help": "l: prefix keys/values per attention site (a budget's knobs.ptuning_v2)"})
    dropout: float = field(default=0.1, metadata={"help": "dropout on the prefix keys/values (official code: 0.1)"})
    lr: float | None = field(default=None, metadata={"help": "learning rate of the prefixes; null = trainer.lr"})
    init_std: float = field(default=1.0, metadata={
        "help": "σ of the N(0, σ²) prefix init (official code: 1, nn.Embedding's); match the backbone's own "
                "key/value scale on small models (see conf/method_hparams/quick/ptuning_v2_rotten_tomatoes.yaml)"})

    def __post_init__(self) -> None:
        check_prefix("ptuning_v2", self.num_virtual_tokens, 1, self.dropout, self.lr)
        if not self.init_std > 0:
            raise ValueError(f"ptuning_v2: init_std must be > 0, got {self.init_std}")
