"""Houlsby adapters: a bottleneck adapter after the attention and the FFN output projections (ICML 2019)."""

from peftbench.methods import register
from peftbench.methods.houlsby.config import HoulsbyConfig

__all__ = ["HoulsbyConfig"]

# knob_kind bottleneck: budgets set it by name (budget.knobs.houlsby); AdaLoRA Table 7: 8 / 16 / 32
register("houlsby", config=HoulsbyConfig, method="peftbench.methods.houlsby.method:HoulsbyMethod",
         knob="bottleneck", knob_kind="bottleneck")
