"""AdaLoRA (Zhang et al., ICLR 2023): SVD-form adapters with importance-driven global rank allocation."""

from peftbench.methods import register
from peftbench.methods.adalora.config import AdaLoRAConfig
from peftbench.methods.adalora.method import AdaLoRAMethod

__all__ = ["AdaLoRAConfig", "AdaLoRAMethod"]

register("adalora", config=AdaLoRAConfig, method=AdaLoRAMethod)
