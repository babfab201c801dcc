"""Parallel adapters: a scaled bottleneck beside the FFN, reading its input (He et al., ICLR 2022)."""

from peftbench.methods import register
from peftbench.methods.parallel.config import ParallelConfig
from peftbench.methods.parallel.method import ParallelMethod

__all__ = ["ParallelConfig", "ParallelMethod"]

register("parallel", config=ParallelConfig, method=ParallelMethod)
