"""LoRA via Hugging Face PEFT."""

from peftbench.methods import register
from peftbench.methods.lora.config import LoRAConfig
from peftbench.methods.lora.method import LoRAMethod

register("lora", config=LoRAConfig, method=LoRAMethod)
