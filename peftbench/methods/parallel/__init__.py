"""Parallel adapters: a scaled bottleneck beside the FFN, reading its input (He et al., ICLR 2022)."""

from peftbench.methods import register
from peftbench.methods.parallel.config import ParallelConfig

__all__ = ["ParallelConfig"]

# knob_kind bottleneck, no paper budget map: a group leaves it at its config value, a cap searches it
register("parallel", config=ParallelConfig, method="peftbench.methods.parallel.method:ParallelMethod",
         knob="bottleneck", knob_kind="bottleneck")
