from __future__ import annotations

from peft import LoraConfig as PeftLoraConfig
from peft import inject_adapter_in_model
from torch import nn

from peftbench.methods.base import Method, adapted_modules, freeze
from peftbench.methods.lora.config import LoRAConfig
from peftbench.methods.lora.layer import fuse


class LoRAMethod(Method):
    """LoRA through ``peft.inject_adapter_in_model``: the backbone keeps its own class (no PeftModel wrapper),
    so the loop, the head and parameter counting treat every method alike. PEFT's layers over plain
    ``nn.Linear`` then get a fused forward (``layer.FusedLoRALinear``), the same map in one ``addmm_``."""

    name = "lora"
    config: LoRAConfig

    def apply(self, model: nn.Module) -> nn.Module:
        peft_config = PeftLoraConfig(
            r=self.config.r,
            lora_alpha=self.config.alpha,
            lora_dropout=self.config.dropout,
            target_modules=self.spec.target_regex(tuple(self.config.target_types)),
            bias="none",
        )
        model = inject_adapter_in_model(peft_config, model)
        fuse(model)
        freeze(model, self.spec)
        return model

    def final_ranks(self, model: nn.Module) -> dict[str, int]:
        """Every adapted matrix keeps its rank r (the same schema as AdaLoRA's and SoRA's records)."""
        return dict.fromkeys(adapted_modules(model), self.config.r)
