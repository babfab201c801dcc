"""Prefix tuning (Li & Liang, ACL 2021): per-layer key/value prefixes, MLP-reparameterised while training."""

from peftbench.methods import register
from peftbench.methods.prefix.config import PrefixConfig
from peftbench.methods.prefix.method import PrefixMethod

__all__ = ["PrefixConfig", "PrefixMethod"]

register("prefix", config=PrefixConfig, method=PrefixMethod)
