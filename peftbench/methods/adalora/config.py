"""AdaLoRA configuration in the paper's terms (Zhang et al., ICLR 2023, §3 and Appendix A).

Budget: every adapted matrix starts with ``init_rank`` singular triplets, so b(0) = init_rank × n and
b(T) = target_rank × n for n adapted matrices (the paper's r̄ is ``target_rank``). The paper starts from
1.5 × r̄ (Table 7 text); ``init_rank=None`` applies that rule, rounding halves up: r̄ 1/2/4/8 -> 2/3/6/12.
Table 9 (SQuAD) instead lists r̄ = 2 with initial rank 4, and the released GLUE scripts use r̄ = 1 with
initial rank 3 (MNLI, CoLA) or 2 (others); set ``init_rank`` explicitly to reproduce those.

Schedule: ``t_i`` warm-up steps at b(0), a cubic decrease to b(T) until step T - ``t_f``, then ``t_f``
steps with the rank pattern frozen; masks are recomputed every ``delta_t`` steps (ΔT). T is only known
when the dataset's size is, so ``t_i + t_f < T`` is checked by ``check_total_steps`` (before weights load).

Timing (two switches, both defaulting to what the official trainers did for the paper's runs):

- ``step_origin``: the step handed to the schedule. The loop counts completed optimizer steps from 1 (t).
  The official trainers (NLU and NLG_QA ``src/transformers/trainer.py``, ``run_summarization_no_trainer.py``
  and the README example) call ``rankallocator.update_and_mask(model, global_step)`` after
  ``optimizer.step()`` and *before* ``global_step += 1``, with ``global_step`` starting at 0: their schedule
  step is t - 1, and the last one T - 1. ``"official"`` reproduces that; ``"one_based"`` hands over t
  itself (peftbench's behaviour before these switches), so every phase border, mask step and the last
  importance update come one step earlier than in the official runs.
- ``final_phase``: when the final rank pattern is fixed. ``"official"``: the official ``RankAllocator``
  masks in the budget phase at steps s with t_i < s <= T - t_f and s % ΔT == 0, and at every s > T - t_f
  with importance frozen after s = T - t_f - 1; the final pattern therefore appears at T - t_f when ΔT
  divides it and at T - t_f + 1 otherwise. ``"peft"``: PEFT's ``force_mask`` at exactly T - t_f (the
  pattern is the same; it appears one step earlier when ΔT does not divide T - t_f, and the weights drift
  apart from then on). ``step_origin="one_based", final_phase="peft"`` is bit-identical to peft 0.21.2
  driven with steps 1..T.

Arithmetic (``update_rounding``): ``"official"`` computes the update as the official ``SVDLinear`` does,
(x Qᵀ Λ Pᵀ) · α, then / (r + 1e-5), then added: bit-identical to the official code and to PEFT. ``"fused"`` adds
it with one ``addmm_`` scaled by α / (r + 1e-5) (``peftbench.methods.lowrank``): the same map within float
rounding (the scale applied once instead of twice; ~1e-6 relative in the tests), without the two passes over the
output, which on MiniLM were 3% of a training step (``benchmarks/README.md``, "Fused low-rank update").
``orth_reg_weight`` (γ) may be 0: the regulariser is then skipped. PEFT's forward raised for γ <= 0
("orth_reg_weight should be greater than 0") until huggingface/peft#3438; peft 0.21.2 accepts γ = 0 but
still computes the regulariser and adds 0 × R inside ``forward``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from peftbench.models.roles import MATRIX_TYPES

STEP_ORIGINS = ("official", "one_based")
FINAL_PHASES = ("official", "peft")
UPDATE_ROUNDINGS = ("fused", "official")


def default_init_rank(target_rank: int) -> int:
    """1.5 × r̄ rounded half up (the paper's rule; Python's ``round`` would send 2.5 to 2)."""
    return int(1.5 * target_rank + 0.5)


@dataclass
class AdaLoRAConfig:
    target_rank: int = field(default=2, metadata={"help": "r̄: average final rank per matrix, b(T) = r̄ × n"})
    init_rank: int | None = field(default=None, metadata={"help": "initial rank per matrix; None = 1.5 × r̄"})
    lora_alpha: float = field(default=32.0, metadata={"help": "scale α: ΔW = α/(r_init + 1e-5) · PΛQ"})
    lora_dropout: float = field(
        default=0.0, metadata={"help": "dropout on the adapter input (not set by the released scripts)"}
    )
    beta1: float = field(default=0.85, metadata={"help": "β1: EMA of sensitivity Ī (Eq. 10)"})
    beta2: float = field(default=0.85, metadata={"help": "β2: EMA of uncertainty Ū (Eq. 10)"})
    orth_reg_weight: float = field(default=0.1, metadata={"help": "γ of the orthogonal regulariser; 0 = off"})
    t_i: int = field(default=600, metadata={"help": "warm-up optimizer steps at b(0) before any masking"})
    t_f: int = field(default=1800, metadata={"help": "final optimizer steps with the rank pattern frozen"})
    delta_t: int = field(default=1, metadata={"help": "ΔT: optimizer steps between two mask updates"})
    target_types: tuple[str, ...] = field(
        default=MATRIX_TYPES, metadata={"help": "matrix types to adapt (query, key, ..., ffn_out)"}
    )

    step_origin: str = field(
        default="official",
        metadata={
            "help": "schedule step for loop step t (completed steps from 1): 'official' = t - 1, as the "
            "official trainers pass global_step before incrementing it; 'one_based' = t"
        },
    )
    final_phase: str = field(
        default="official",
        metadata={
            "help": "when the final pattern is fixed: 'official' = at T - t_f if ΔT divides it, else "
            "T - t_f + 1 (official RankAllocator); 'peft' = always at T - t_f (PEFT's force_mask)"
        },
    )

    update_rounding: str = field(
        default="fused",
        metadata={
            "help": "'fused': the update added by one addmm scaled by α/(r + 1e-5) (faster, equal within rounding); "
            "'official': x Qᵀ Λ Pᵀ · α / (r + 1e-5) in the official order, bit-identical to the official code"
        },
    )

    def __post_init__(self) -> None:
        self.target_types = tuple(self.target_types)  # Hydra hands over a ListConfig
        if self.target_rank < 1:
            raise ValueError(f"target_rank must be >= 1, got {self.target_rank}; set method.target_rank=1 or more")
        if self.initial_rank < self.target_rank:
            raise ValueError(
                f"init_rank ({self.initial_rank}) must be >= target_rank ({self.target_rank}); raise "
                "method.init_rank or set it to null for 1.5 × target_rank"
            )
        for name in ("beta1", "beta2"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must lie in (0, 1), got {getattr(self, name)}; the paper uses 0.85")
        if self.orth_reg_weight < 0:
            raise ValueError(f"orth_reg_weight must be >= 0, got {self.orth_reg_weight}; use 0 to switch it off")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must lie in [0, 1), got {self.lora_dropout}")
        if self.t_i < 0 or self.t_f < 0:
            raise ValueError(f"t_i and t_f must be >= 0, got t_i={self.t_i}, t_f={self.t_f}")
        if self.delta_t < 1:
            raise ValueError(f"delta_t must be >= 1, got {self.delta_t}; 1 masks after every optimizer step")
        if self.step_origin not in STEP_ORIGINS:
            raise ValueError(
                f"step_origin must be one of {STEP_ORIGINS}, got {self.step_origin!r}; 'official' passes the "
                "0-based step of the official trainers, 'one_based' the count of completed steps"
            )
        if self.final_phase not in FINAL_PHASES:
            raise ValueError(
                f"final_phase must be one of {FINAL_PHASES}, got {self.final_phase!r}; 'official' fixes the "
                "pattern as the official RankAllocator, 'peft' at T - t_f as PEFT's force_mask"
            )
        if self.update_rounding not in UPDATE_ROUNDINGS:
            raise ValueError(
                f"update_rounding must be one of {UPDATE_ROUNDINGS}, got {self.update_rounding!r}; 'official' "
                "rounds as the official SVDLinear (bit-identical), 'fused' adds the update in one addmm"
            )
        unknown = sorted(set(self.target_types) - set(MATRIX_TYPES))
        if unknown or not self.target_types:
            raise ValueError(f"target_types must be a non-empty subset of {MATRIX_TYPES}, got {self.target_types}")

    def check_total_steps(self, total_steps: int) -> None:
        """The schedule needs ``t_i + t_f < T``; ``peftbench.run.preflight`` calls this before weights load
        whenever T is known from the config and the dataset's size (``on_train_start`` checks again)."""
        if self.t_i + self.t_f >= total_steps:
            raise ValueError(f"method.t_i={self.t_i} + method.t_f={self.t_f} must be < the run's total optimizer "
                             f"steps T={total_steps}; lower method.t_i and method.t_f or train for more steps")

    @property
    def initial_rank(self) -> int:
        """Rank every matrix starts with: ``init_rank``, or 1.5 × r̄ when it is None (kept None so that
        ``with_rank`` re-derives it from the new r̄)."""
        return default_init_rank(self.target_rank) if self.init_rank is None else self.init_rank

    def with_rank(self, rank: int) -> AdaLoRAConfig:
        """A copy for a peftbench budget ``rank``: r̄ = rank; an explicit ``init_rank`` is kept (and checked
        against the new r̄), a None one follows as 1.5 × r̄."""
        return replace(self, target_rank=rank)
