from __future__ import annotations

from torch import nn

from peftbench.methods.lora.method import LoRAMethod
from peftbench.methods.qlora.config import QLoRAConfig
from peftbench.models import keep_4bit_trainable, quantized_modules


class QLoRAMethod(LoRAMethod):
    """LoRA (through PEFT, which wraps bitsandbytes ``Linear4bit`` layers in its own 4-bit LoRA layer) on a 4-bit
    backbone. ``quantization`` makes the config require ``model.quantization=nf4`` before weights load; ``apply``
    checks the backbone really is 4-bit and the heads are not, and keeps the 4-bit weights trainable through
    evaluations on AVX512-BF16 CPUs (see ``peftbench.models.keep_4bit_trainable``).

    The planner applies the method to the full-precision backbone on the meta device: its counts equal the 4-bit
    model's because ``count_parameters`` reads a packed weight's logical shape."""

    name = "qlora"
    config: QLoRAConfig

    def apply(self, model: nn.Module) -> nn.Module:
        if not _on_meta(model):
            quantized = quantized_modules(model)
            if not quantized:
                raise ValueError(f"method qlora needs a 4-bit backbone: {self.spec.name} has no 4-bit layer "
                                 f"(load it with model.quantization=nf4)")
            heads = sorted(name for name in quantized if self.spec.is_head(f"{name}.weight"))
            if heads:
                raise ValueError(f"method qlora: the task head must stay in full precision, but {heads} are 4-bit")
            keep_4bit_trainable(model)
        return super().apply(model)


def _on_meta(model: nn.Module) -> bool:
    return any(parameter.is_meta for parameter in model.parameters())
