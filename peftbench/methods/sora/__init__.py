"""SoRA: sparse low-rank adaptation with proximal-gradient gates (Ding et al., EMNLP 2023)."""

from peftbench.methods import register
from peftbench.methods.sora.config import SoRAConfig

__all__ = ["SoRAConfig"]

register("sora", config=SoRAConfig, method="peftbench.methods.sora.method:SoRAMethod",
         knob="r", knob_kind="rank",  # the initial rank; the gates prune below it, so the budget binds trainable
         sparsifiable=True)
