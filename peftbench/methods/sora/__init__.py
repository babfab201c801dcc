"""SoRA: sparse low-rank adaptation with proximal-gradient gates (Ding et al., EMNLP 2023)."""

from peftbench.methods import register
from peftbench.methods.sora.config import SoRAConfig
from peftbench.methods.sora.method import SoRAMethod

__all__ = ["SoRAConfig", "SoRAMethod"]

register("sora", config=SoRAConfig, method=SoRAMethod)
