"""QLoRA: LoRA on a backbone loaded in 4-bit NF4 with double quantisation (``model.quantization=nf4``)."""

from peftbench.methods import register
from peftbench.methods.qlora.config import QLoRAConfig

register("qlora", config=QLoRAConfig, method="peftbench.methods.qlora.method:QLoRAMethod",
         knob="r", knob_kind="rank", quantization="nf4")
