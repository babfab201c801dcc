"""LoRA via Hugging Face PEFT."""

from peftbench.methods import register
from peftbench.methods.lora.config import LoRAConfig

register("lora", config=LoRAConfig, method="peftbench.methods.lora.method:LoRAMethod",
         knob="r", knob_kind="rank")
