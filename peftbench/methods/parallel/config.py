"""Parallel adapter settings (He et al., ICLR 2022, "Towards a Unified View of Parameter-Efficient Transfer
Learning"): their FFN parallel adapter, ``ffn_adapter=parallel`` in the released code."""

from __future__ import annotations

from dataclasses import dataclass, field

from peftbench.methods.houlsby.config import check_adapter


@dataclass
class ParallelConfig:
    bottleneck: int = field(
        default=64, metadata={"help": "d: bottleneck size (He et al.: 512 on BART-large XSum; no AdaLoRA budget)"})
    scale: float = field(default=2.0, metadata={"help": "s: adapter output scale (He et al.: 4 XSum, 2 GLUE)"})
    activation: str = field(default="relu", metadata={"help": "f: relu (He et al.), swish, gelu, tanh"})
    init: str = field(
        default="kaiming", metadata={"help": "W_down init: kaiming (He et al.'s init_option=lora) or normal"})
    init_std: float = field(default=1e-2, metadata={"help": "std of W_down for init=normal"})
    target_types: list[str] = field(
        default_factory=lambda: ["ffn_out"],
        metadata={"help": "the site: ffn_out (reads the ffn_in input, adds to the ffn_out output); no other"})
    train_layernorm: bool = field(default=False, metadata={"help": "also train every LayerNorm (He et al.: no)"})

    def __post_init__(self) -> None:
        check_adapter(self, "parallel", ("ffn_out",))
        if isinstance(self.scale, bool) or not isinstance(self.scale, int | float) or not self.scale > 0:
            raise ValueError(f"parallel: scale must be a number > 0, got {self.scale!r}")
        self.scale = float(self.scale)
