from dataclasses import dataclass, field


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
