"""P-tuning v2 (Liu et al., ACL 2022): per-layer prefixes without reparameterisation, with the task head."""

from peftbench.methods import register
from peftbench.methods.ptuning_v2.config import PTuningV2Config
from peftbench.methods.ptuning_v2.method import PTuningV2Method

__all__ = ["PTuningV2Config", "PTuningV2Method"]

register("ptuning_v2", config=PTuningV2Config, method=PTuningV2Method)
