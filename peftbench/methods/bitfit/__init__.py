"""BitFit (Ben Zaken et al., ACL 2022): train only the bias terms (plus the task head)."""

from dataclasses import dataclass

from torch import nn

from peftbench.methods import register
from peftbench.methods.base import Method, freeze


@dataclass
class BitFitConfig:
    """No knobs: every ``*.bias`` of the backbone is trained, nothing else but the head."""


class BitFitMethod(Method):
    name = "bitfit"

    def trains_backbone_parameter(self, name: str) -> bool:
        return name.endswith(".bias")

    def apply(self, model: nn.Module) -> nn.Module:
        freeze(model, self.spec, self.trains_backbone_parameter)
        return model


register("bitfit", config=BitFitConfig, method=BitFitMethod)
