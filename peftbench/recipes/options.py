"""Options of each recipe (the ``recipe`` config group, conf/recipe/*.yaml), torch-free so that configs validate
without the training stack. A recipe's own options never live in a method's config."""

from __future__ import annotations

from dataclasses import dataclass, field

SCHEDULES = ("linear", "log_linear", "exp_linear")
STAGE_LR = ("restart", "continue")


@dataclass
class TrainOptions:
    """One training run (``peftbench.train``): no options."""

    name: str = "train"


@dataclass
class SparsityOptions:
    """SoRA's sparsifying scheduler (Ding et al., EMNLP 2023, Algorithm 1): a dense stage of ``trainer.epochs``
    at ``threshold_start``, then one stage of ``stage_epochs`` per further threshold up to ``threshold_end``."""

    name: str = "sora_sparsity"
    schedule: str = field(default="linear", metadata={"help": "threshold spacing: linear, log_linear, exp_linear"})
    threshold_start: float = field(default=0.0, metadata={"help": "xi of the dense stage (authors: 0)"})
    threshold_end: float = field(default=7e-4, metadata={"help": "last threshold (authors' max_lambda)"})
    num_thresholds: int = field(default=7, metadata={"help": "thresholds incl. the dense stage's -> 6 stages"})
    stage_epochs: int = field(default=15, metadata={"help": "epochs of each sparsifying stage (authors: 15)"})
    stage_lr: str = field(default="restart", metadata={
        "help": "restart: each stage gets a fresh warm-up/decay schedule (Algorithm 1 trains every stage); "
                "continue: the dense stage's schedule goes on, as in the released code, where it has decayed to 0"})
    memorization_examples: int = field(default=1000, metadata={"help": "fixed training subset for memorization"})
    memorization_seed: int = field(default=42, metadata={"help": "its seed (authors: shuffle seed 42)"})

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"recipe.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.threshold_start < 0 or self.threshold_end <= self.threshold_start:
            raise ValueError(f"recipe.threshold_end ({self.threshold_end}) must exceed recipe.threshold_start "
                             f"({self.threshold_start}) >= 0; the authors' RTE run goes from 0 to 7e-4")
        if self.schedule == "exp_linear" and self.threshold_start <= 0:
            raise ValueError("recipe.schedule=exp_linear needs threshold_start > 0 (geometric spacing); use linear")
        if self.num_thresholds < 2 or self.stage_epochs < 1 or self.memorization_examples < 1:
            raise ValueError("recipe.num_thresholds must be >= 2 (dense stage + one stage), stage_epochs and "
                             f"memorization_examples >= 1; got {self.num_thresholds}, {self.stage_epochs}, "
                             f"{self.memorization_examples}")
        if self.stage_lr not in STAGE_LR:
            raise ValueError(f"recipe.stage_lr must be one of {STAGE_LR}, got {self.stage_lr!r}")


# recipe name -> (entry point "module:function" taking a validated RunConfig, options dataclass)
RECIPE_OPTIONS: dict[str, tuple[str, type]] = {
    "train": ("peftbench.train:train", TrainOptions),
    "sora_sparsity": ("peftbench.recipes.sora_sparsity:run_sparsity", SparsityOptions),
}
