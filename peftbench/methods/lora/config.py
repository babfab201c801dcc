from __future__ import annotations

from dataclasses import dataclass, field, replace

from peftbench.models.roles import MATRIX_TYPES


@dataclass
class LoRAConfig:
    """LoRA (Hu et al., ICLR 2022), Eq. (3): h = W0 x + (alpha / r) B A x with A Kaiming-uniform and B = 0."""

    r: int = field(default=8, metadata={"help": "rank of every adapted matrix (AdaLoRA Table 1: 2 or 8)"})
    alpha: float = field(default=16.0, metadata={"help": "scale numerator: the update is scaled by alpha / r"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the adapter's input"})
    target_types: list[str] = field(default_factory=lambda: list(MATRIX_TYPES),
                                    metadata={"help": "matrix types to adapt (AdaLoRA adapts all six)"})

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ValueError(f"method.r must be a positive rank, got {self.r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"method.dropout must lie in [0, 1), got {self.dropout}")
        unknown = sorted(set(self.target_types) - set(MATRIX_TYPES))
        if unknown or not self.target_types:
            raise ValueError(f"method.target_types: unknown {unknown}; choose from {list(MATRIX_TYPES)}")

    def with_rank(self, rank: int) -> LoRAConfig:
        return replace(self, r=rank)
