"""Full fine-tuning: every backbone parameter is trained (AdaLoRA Table 1, "Full FT")."""

from peftbench.methods import register
from peftbench.methods.full.config import FullConfig

register("full", config=FullConfig, method="peftbench.methods.full.method:FullMethod")
