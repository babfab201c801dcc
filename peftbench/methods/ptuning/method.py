from __future__ import annotations

from typing import Any

from torch import nn

from peftbench.methods.base import count_parameters
from peftbench.methods.prompt.layer import SoftPrompt
from peftbench.methods.prompt.method import VirtualTokenMethod
from peftbench.methods.ptuning.config import PTuningConfig
from peftbench.methods.ptuning.encoder import PromptEncoder, export


class PTuningMethod(VirtualTokenMethod):
    """P-tuning v1 (Liu et al. 2021). See ``peftbench/methods/ptuning/__init__.py``."""

    name = "ptuning"
    module_name = "prompt_encoder"
    config: PTuningConfig

    def build(self, model: nn.Module, embedding: nn.Module) -> nn.Module:
        config = self.config
        hidden = int(embedding.weight.shape[1])
        encoder = PromptEncoder(self.length, hidden, config.encoder, config.encoder_hidden_size,
                                config.lstm_layers, config.lstm_dropout)
        return encoder.to(device=embedding.weight.device, dtype=embedding.weight.dtype)

    def planned_effective_parameters(self, model: nn.Module) -> int:
        """l·h: only the encoder's output embeddings are kept."""
        return self.length * self.hidden_size(model)

    def effective_parameters(self, model: nn.Module) -> int:
        """l·h plus the head, whether or not the encoder has been dropped yet."""
        return count_parameters(model, self.spec)["head"] + self.planned_effective_parameters(model)

    def drop_encoder(self, model: nn.Module) -> None:
        """Replace the trained encoder by the fixed l × h prompt it produces (same predictions)."""
        module = model.get_submodule(self.module_name)
        if isinstance(module, PromptEncoder):
            setattr(model, self.module_name, SoftPrompt(export(module)))

    def on_train_end(self, model: nn.Module) -> dict[str, Any]:
        module = model.get_submodule(self.module_name)
        encoder = sum(p.numel() for p in module.parameters()) if isinstance(module, PromptEncoder) else None
        records = super().on_train_end(model)
        self.drop_encoder(model)
        records.update(encoder=self.config.encoder, encoder_parameters=encoder, encoder_dropped=True)
        return records
