"""Full fine-tuning: every backbone parameter is trained (AdaLoRA Table 1, "Full FT")."""

from dataclasses import dataclass

from torch import nn

from peftbench.methods import register
from peftbench.methods.base import Method


@dataclass
class FullConfig:
    """No knobs: the trainer's learning rate and weight decay apply to all parameters."""


class FullMethod(Method):
    name = "full"

    def trains_backbone_parameter(self, name: str) -> bool:
        return True

    def apply(self, model: nn.Module) -> nn.Module:
        model.requires_grad_(True)
        return model


register("full", config=FullConfig, method=FullMethod)
