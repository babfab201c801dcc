"""BitFit (Ben Zaken et al., ACL 2022): train only the bias terms (plus the task head)."""

from dataclasses import dataclass

from torch import nn

from peftbench.methods import register
from peftbench.methods.base import Method, freeze_except


@dataclass
class BitFitConfig:
    """No knobs: every ``*.bias`` of the backbone is trained, nothing else but the head."""


class BitFitMethod(Method):
    name = "bitfit"

    def apply(self, model: nn.Module) -> nn.Module:
        freeze_except(model, lambda name: name.endswith(".bias") or self.spec.is_head(name))
        return model


register("bitfit", config=BitFitConfig, method=BitFitMethod)
