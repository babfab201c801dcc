"""Houlsby adapters: a bottleneck adapter after the attention and the FFN output projections (ICML 2019)."""

from peftbench.methods import register
from peftbench.methods.houlsby.config import HoulsbyConfig
from peftbench.methods.houlsby.method import HoulsbyMethod

__all__ = ["HoulsbyConfig", "HoulsbyMethod"]

register("houlsby", config=HoulsbyConfig, method=HoulsbyMethod)
