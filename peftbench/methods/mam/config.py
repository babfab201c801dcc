"""MAM adapter settings (He et al., ICLR 2022). Defaults: their GLUE setting, prefix length 16, FFN bottleneck 16,
scale s = 2, with the prefix MLP width 800 of their code; their BART-large XSum run uses l = 30, d = 512, s = 4,
MLP width 800 (``num_virtual_tokens=30 bottleneck=512 scaling=4``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from peftbench.methods.prefix.config import check_prefix


@dataclass
class MAMConfig:
    bottleneck: int = field(default=16, metadata={"help": "d: FFN parallel adapter bottleneck (a budget's knobs.mam)"})
    scaling: float = field(default=2.0, metadata={"help": "s: the adapter output is multiplied by s (GLUE 2, XSum 4)"})
    adapter_dropout: float = field(default=0.0, metadata={"help": "dropout inside the adapter, after the ReLU"})
    num_virtual_tokens: int = field(default=16, metadata={"help": "l: prefix length per attention site"})
    reparameterize: bool = field(default=True, metadata={"help": "train the prefix through the MLP (dropped after)"})
    encoder_width: int = field(default=800, metadata={"help": "m: width of the prefix reparameterisation MLP"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the prefix keys/values"})
    lr: float | None = field(default=None, metadata={"help": "lr of prefix and adapter parameters; null = trainer.lr"})

    def __post_init__(self) -> None:
        check_prefix("mam", self.num_virtual_tokens, self.encoder_width, self.dropout, self.lr)
        if self.bottleneck < 1:
            raise ValueError(f"mam: bottleneck must be >= 1, got {self.bottleneck}")
        if self.scaling <= 0:
            raise ValueError(f"mam: scaling must be > 0, got {self.scaling}")
        if not 0.0 <= self.adapter_dropout < 1.0:
            raise ValueError(f"mam: adapter_dropout must be in [0, 1), got {self.adapter_dropout}")
