"""Prefix tuning (Li & Liang, ACL 2021): per-layer key/value prefixes, MLP-reparameterised while training."""

from peftbench.methods import register
from peftbench.methods.prefix.config import PrefixConfig

__all__ = ["PrefixConfig"]

register("prefix", config=PrefixConfig, method="peftbench.methods.prefix.method:PrefixMethod",
         knob="num_virtual_tokens", knob_kind="virtual_tokens",
         budget_binds="effective")  # the MLP exists only while training
