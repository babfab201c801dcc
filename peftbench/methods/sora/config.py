"""SoRA settings. Defaults follow the authors' released no-schedule run (scripts/run_glue_sora_no_schedule.sh,
STS-B: r 8, L1 weight 10, threshold 3e-4); trainer-level settings (lr, max grad norm 0.1, warm-up 0.06, weight
decay 0.1) live in ``conf/trainer``, not here."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from peftbench.methods.base import MATRIX_TYPES

GATE_INITS = ("normal", "ones")
THRESHOLD_MODES = ("exact", "official")
SCHEDULES = ("linear", "log_linear", "exp_linear")
STAGE_LR = ("continue", "restart")


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
    # Sparsifying scheduler (Algorithm 1), read only by peftbench.recipes.sora_sparsity.
    schedule: str | None = field(
        default=None, metadata={"help": "threshold schedule: linear, log_linear or exp_linear; null = none"}
    )
    threshold_end: float | None = field(
        default=None, metadata={"help": "last threshold of the schedule (authors' max_lambda)"}
    )
    num_thresholds: int = field(
        default=7, metadata={"help": "thresholds from `threshold` to `threshold_end`; the first is the dense stage's"}
    )
    stage_epochs: int = field(default=15, metadata={"help": "epochs of each sparsifying stage (authors: 15)"})
    stage_lr: str = field(
        default="continue",
        metadata={"help": "continue: the dense stage's schedule goes on (authors: lr 0); restart: new per stage"},
    )
    memorization_examples: int = field(
        default=1000, metadata={"help": "size of the fixed training subset that measures memorization"}
    )
    memorization_seed: int = field(default=42, metadata={"help": "seed of that subset (authors: shuffle seed 42)"})

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
        if self.schedule is not None:
            self._check_schedule()

    def _check_schedule(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"sora: schedule must be one of {SCHEDULES} or null, got {self.schedule!r}")
        if self.threshold_end is None or self.threshold_end <= self.threshold:
            raise ValueError(
                f"sora: schedule {self.schedule} needs threshold_end > threshold ({self.threshold}), "
                f"got {self.threshold_end}; e.g. the authors' RTE run: threshold 0, threshold_end 7e-4"
            )
        if self.schedule == "exp_linear" and self.threshold <= 0:
            raise ValueError("sora: exp_linear needs threshold > 0 (geometric spacing); use linear to start at 0")
        if self.num_thresholds < 2 or self.stage_epochs < 1 or self.memorization_examples < 1:
            raise ValueError(
                "sora: num_thresholds must be >= 2 (dense stage + one stage), stage_epochs and "
                f"memorization_examples >= 1; got {self.num_thresholds}, {self.stage_epochs}, "
                f"{self.memorization_examples}"
            )
        if self.stage_lr not in STAGE_LR:
            raise ValueError(f"sora: stage_lr must be one of {STAGE_LR}, got {self.stage_lr!r}")
        if self.stage_lr == "continue" and self.threshold_times_lr:
            raise ValueError(
                "sora: stage_lr=continue leaves lr at 0 after the dense stage, so a threshold scaled by the lr "
                "(threshold_times_lr=true) would never act; use stage_lr=restart"
            )

    def with_rank(self, rank: int) -> SoRAConfig:
        """A budget's rank is SoRA's initial rank r; the gates then prune below it."""
        return dataclasses.replace(self, r=rank)
