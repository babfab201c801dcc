"""Pfeiffer adapters: one bottleneck adapter after the FFN output projection, ReLU (EACL 2021)."""

from peftbench.methods import register
from peftbench.methods.pfeiffer.config import PfeifferConfig

__all__ = ["PfeifferConfig"]

# knob_kind bottleneck: budgets set it by name (budget.knobs.pfeiffer); AdaLoRA Table 7: 16 / 32 / 64
register("pfeiffer", config=PfeifferConfig, method="peftbench.methods.pfeiffer.method:PfeifferMethod",
         knob="bottleneck", knob_kind="bottleneck")
