from __future__ import annotations

from typing import Any

from peft import LoraConfig as PeftLoraConfig
from peft import inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from torch import nn

from peftbench.methods.base import Method, freeze_except
from peftbench.methods.lora.config import LoRAConfig


class LoRAMethod(Method):
    """LoRA through ``peft.inject_adapter_in_model``: the backbone keeps its own class (no PeftModel wrapper),
    so the loop, the head and parameter counting treat every method alike."""

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
        freeze_except(model, lambda name: "lora_" in name or self.spec.is_head(name))
        return model

    def on_train_end(self, model: nn.Module) -> dict[str, Any]:
        """The adapted matrices with their (uniform) rank, in the schema AdaLoRA and SoRA records use."""
        matrices = {
            name: {"layer": self.spec.layer_of(name), "type": self.spec.matrix_type(name),
                   "in_features": module.in_features, "out_features": module.out_features}
            for name, module in model.named_modules() if isinstance(module, LoraLayer)
        }
        return {"matrices": matrices, "final_ranks": dict.fromkeys(matrices, self.config.r)}
