"""P-tuning v2 (Liu et al., ACL 2022): per-layer prefixes without reparameterisation, with the task head."""

from peftbench.methods import register
from peftbench.methods.ptuning_v2.config import PTuningV2Config

__all__ = ["PTuningV2Config"]

register("ptuning_v2", config=PTuningV2Config, method="peftbench.methods.ptuning_v2.method:PTuningV2Method",
         knob="num_virtual_tokens", knob_kind="virtual_tokens")  # nothing is dropped after training: binds trainable
