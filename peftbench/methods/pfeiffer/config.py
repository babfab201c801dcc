"""Pfeiffer adapter settings (Pfeiffer et al., EACL 2021), as AdaLoRA's PAdapter baseline runs them."""

from __future__ import annotations

from dataclasses import dataclass, field

from peftbench.methods.houlsby.config import SEQUENTIAL_SITES, check_adapter


@dataclass
class PfeifferConfig:
    bottleneck: int = field(
        default=48, metadata={"help": "d: bottleneck size (Pfeiffer: h/16 = 48 on BERT-base; AdaLoRA: 16/32/64)"})
    activation: str = field(default="relu", metadata={"help": "f: relu (Pfeiffer et al., AdaLoRA), swish, gelu, tanh"})
    init: str = field(
        default="normal", metadata={"help": "W_down init: normal (truncated N(0, init_std^2)) or kaiming"})
    init_std: float = field(default=1e-2, metadata={"help": "std of W_down for init=normal"})
    target_types: list[str] = field(
        default_factory=lambda: ["ffn_out"],
        metadata={"help": "projections followed by an adapter (Pfeiffer: ffn_out only)"})
    train_layernorm: bool = field(
        default=False, metadata={"help": "also train every LayerNorm (AdaLoRA's counts: no)"})

    def __post_init__(self) -> None:
        check_adapter(self, "pfeiffer", SEQUENTIAL_SITES)
