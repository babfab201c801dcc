from torch import nn

from peftbench.methods.base import Method


class FullMethod(Method):
    name = "full"

    def trains_backbone_parameter(self, name: str) -> bool:
        return True

    def apply(self, model: nn.Module) -> nn.Module:
        model.requires_grad_(True)
        return model

    def param_groups(self, model: nn.Module, weight_decay: float) -> list[dict]:
        groups = super().param_groups(model, weight_decay)
        return groups if self.config.lr is None else [{**group, "lr": self.config.lr} for group in groups]
