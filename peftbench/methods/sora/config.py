"""SoRA settings. Defaults follow the authors' released no-schedule run (scripts/run_glue_sora_no_schedule.sh,
STS-B: r 8, L1 weight 10, threshold 3e-4); trainer-level settings (lr, max grad norm 0.1, warm-up 0.06, weight
decay 0.1) live in ``conf/trainer``, not here, and the sparsifying scheduler's options in the recipe group
(``peftbench.recipes.options.SparsityOptions``, conf/recipe/sora_sparsity.yaml)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from peftbench.models.roles import MATRIX_TYPES

GATE_INITS = ("normal", "ones")
THRESHOLD_MODES = ("exact", "official")


@dataclass
class SoRAConfig:
    r: int = field(default=8, metadata={"help": "initial rank of every adapted matrix (a budget's rank sets it)"})
    alpha: float = field(default=16.0, metadata={"help": "LoRA alpha; the update is scaled by alpha / r"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the adapter input (authors: 0)"})
    target_types: list[str] = field(
        default_factory=lambda: list(MATRIX_TYPES),
        metadata={"help": "matrix types to adapt (authors: all six)"},
    )
    gate_init: str = field(default="normal", metadata={"help": "gate init: normal (authors, N(0,1)) or ones"})
    l1_weight: float = field(
        default=10.0,
        metadata={"help": "eta: weight of the L1 loss eta * mean|g| over all gates; 0 turns it off"},
    )
    threshold: float = field(
        default=3e-4, metadata={"help": "xi: proximal threshold applied to the gates after each gate step"}
    )
    threshold_mode: str = field(
        default="official", metadata={"help": "official: authors' three masked ops; exact: soft-threshold"}
    )
    threshold_times_lr: bool = field(
        default=False,
        metadata={"help": "scale xi by the current gate lr (paper) instead of not (authors' code)"},
    )
    gate_lr: float | None = field(default=None, metadata={"help": "gate learning rate; null = the main lr"})
    prune_at_end: bool = field(
        default=True, metadata={"help": "on_train_end replaces each gated module by a plain pruned LoRA"}
    )

    def __post_init__(self) -> None:
        self.target_types = list(self.target_types)  # Hydra hands over a ListConfig
        if self.r < 1:
            raise ValueError(f"sora: r must be >= 1, got {self.r}; set method.r (or budget.rank) to a positive int")
        if self.alpha <= 0:
            raise ValueError(f"sora: alpha must be > 0, got {self.alpha}; the authors use 16")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"sora: dropout must be in [0, 1), got {self.dropout}")
        unknown = [t for t in self.target_types if t not in MATRIX_TYPES]
        if unknown or not self.target_types:
            raise ValueError(f"sora: target_types need one or more of {list(MATRIX_TYPES)}; got {self.target_types}")
        if self.gate_init not in GATE_INITS:
            raise ValueError(f"sora: gate_init must be one of {GATE_INITS}, got {self.gate_init!r}")
        if self.l1_weight < 0 or self.threshold < 0:
            raise ValueError(
                f"sora: l1_weight, threshold must be >= 0 (0 = off); got {self.l1_weight}, {self.threshold}"
            )
        if self.threshold_mode not in THRESHOLD_MODES:
            raise ValueError(f"sora: threshold_mode must be one of {THRESHOLD_MODES}, got {self.threshold_mode!r}")
        if self.gate_lr is not None and self.gate_lr <= 0:
            raise ValueError(f"sora: gate_lr must be > 0 or null (= main lr), got {self.gate_lr}")

    def with_rank(self, rank: int) -> SoRAConfig:
        """A budget's rank is SoRA's initial rank r; the gates then prune below it."""
        return dataclasses.replace(self, r=rank)
