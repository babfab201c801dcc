"""Pfeiffer adapters: one bottleneck adapter after the FFN output projection, ReLU (EACL 2021)."""

from peftbench.methods import register
from peftbench.methods.pfeiffer.config import PfeifferConfig
from peftbench.methods.pfeiffer.method import PfeifferMethod

__all__ = ["PfeifferConfig", "PfeifferMethod"]

register("pfeiffer", config=PfeifferConfig, method=PfeifferMethod)
