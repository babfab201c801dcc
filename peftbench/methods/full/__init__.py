"""Full fine-tuning: every backbone parameter is trained (AdaLoRA Table 1, "Full FT")."""

from dataclasses import dataclass, field

from torch import nn

from peftbench.methods import register
from peftbench.methods.base import Method


@dataclass
class FullConfig:
    """Full fine-tuning trains 100-1,000x more parameters than the adapters, at the learning rates of ordinary
    fine-tuning (1e-5 to 5e-5 for BERT/RoBERTa/DeBERTa), not the 5e-4 to 2e-3 of the PEFT methods that a
    comparison preset's ``trainer.lr`` is set for: at 1e-3 MiniLM's full fine-tuning stays at chance (measured:
    0.531 validation accuracy on the shortened learning check). Its own ``lr`` therefore replaces the trainer's,
    with the trainer's schedule; null takes ``trainer.lr``."""

    lr: float | None = field(default=2e-5, metadata={"help": "learning rate of every parameter; null = trainer.lr"})

    def __post_init__(self) -> None:
        if self.lr is not None and self.lr <= 0:
            raise ValueError(f"method.lr must be positive or null (= trainer.lr), got {self.lr}")


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


register("full", config=FullConfig, method=FullMethod)
