from torch import nn

from peftbench.methods.base import Method, freeze


class BitFitMethod(Method):
    name = "bitfit"

    def trains_backbone_parameter(self, name: str) -> bool:
        return name.endswith(".bias")

    def apply(self, model: nn.Module) -> nn.Module:
        freeze(model, self.spec, self.trains_backbone_parameter)
        return model
