"""Importance scores, the global budget schedule and singular-value masking (AdaLoRA §3.2-3.3, App. A).

Everything here is deterministic given the gradients: no sampling, no rank-local state. Under DDP the
loop hands over all-reduced gradients, so every rank computes the same scores and the same masks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from peftbench.methods.adalora.layer import SVDLinear

PARAMS = SVDLinear.adapter_names  # ("lora_A", "lora_E", "lora_B")


@dataclass(frozen=True)
class BudgetSchedule:
    """Global budget b(s) in singular values over all matrices (Eq. 14, Appendix A), s = schedule step.

    b(s) = b(0)                                              for s <= t_i
    b(s) = b(T) + (b(0) - b(T)) · (1 - (s - t_i) / (T - t_i - t_f))³, floored,  for t_i < s <= T - t_f
    b(s) = b(T)                                              for s > T - t_f

    The numerator follows the official ``RankAllocator.schedule_threshold`` (and PEFT), ``s - t_i``. The
    paper prints ``t - t_i - t_f`` as the numerator, which would start the decrease above b(0) (at s = t_i
    the factor is (1 + t_f / (T - t_i - t_f))³ > 1) and not reach b(T) at T - t_f; the code's form is the
    one that produced the published numbers. The official code also floors with ``int`` and uses
    ``s <= t_i`` / ``s > T - t_f`` for the phase borders, as here.

    s is the step the allocator is called with, not the loop's count of completed steps t: the official
    trainers pass s = t - 1 (see :data:`peftbench.methods.adalora.config.AdaLoRAConfig.step_origin` and
    :meth:`RankAllocator.schedule_step`). The field values do not depend on that choice.
    """

    b0: int
    bT: int
    t_i: int
    t_f: int
    delta_t: int
    total_steps: int

    def budget(self, step: int) -> int:
        if step <= self.t_i:
            return self.b0
        if step > self.total_steps - self.t_f:
            return self.bT
        fraction_left = 1 - (step - self.t_i) / (self.total_steps - self.t_f - self.t_i)
        return int(self.bT + (self.b0 - self.bT) * fraction_left**3)

    def is_final(self, step: int) -> bool:
        """Scores are frozen from T - t_f on (official ``update_and_mask``: update only while
        ``global_step < total_step - final_warmup``; PEFT the same)."""
        return step >= self.total_steps - self.t_f

    def fixing_step(self, final_phase: str) -> int:
        """The step that fixes the final pattern (budget b(T), scores frozen since T - t_f - 1).

        ``"peft"``: always T - t_f (PEFT's ``force_mask``). ``"official"``: the official allocator masks at
        T - t_f only when ΔT divides it (a budget-phase mask step whose budget is already b(T)), and at every
        step after it with the same frozen scores, so the pattern appears at T - t_f + 1 otherwise.
        """
        final_start = self.total_steps - self.t_f
        if final_phase == "peft":
            return final_start
        if final_phase == "official":
            return final_start if final_start % self.delta_t == 0 else final_start + 1
        raise ValueError(f"final_phase must be 'official' or 'peft', got {final_phase!r}")

    def is_mask_step(self, step: int, final_phase: str) -> bool:
        """Steps that compute a new mask: every ΔT steps in the budget phase, and the fixing step. Later
        steps re-apply the fixed pattern (the official code recomputes it from the same frozen scores)."""
        fixing = self.fixing_step(final_phase)
        return step == fixing or (self.t_i < step < fixing and step % self.delta_t == 0)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class RankAllocator:
    """Sensitivity/uncertainty EMAs per adapter entry and the global triplet masking.

    Call :meth:`step` once per optimizer step, after ``optimizer.step()`` with gradients still present,
    with the loop's count of completed optimizer steps t (1 at the first step). ``step_origin`` and
    ``final_phase`` are :class:`~peftbench.methods.adalora.config.AdaLoRAConfig`'s timing switches.
    """

    def __init__(
        self,
        layers: dict[str, SVDLinear],
        schedule: BudgetSchedule,
        beta1: float,
        beta2: float,
        step_origin: str = "official",
        final_phase: str = "official",
    ):
        self.layers = dict(sorted(layers.items()))
        self.schedule = schedule
        self.beta1 = beta1
        self.beta2 = beta2
        self.exp_avg_ipt: dict[str, torch.Tensor] = {}  # "<module>.<param>" -> Ī, same shape as the param
        self.exp_avg_unc: dict[str, torch.Tensor] = {}  # "<module>.<param>" -> Ū
        self.masks: dict[str, torch.Tensor] = {}  # module -> (r,) bool, True = triplet kept
        self.history: list[dict] = []
        self.last_step = 0  # loop step t of the latest call
        self.timing: dict[str, str] = {}
        self.configure_timing(step_origin, final_phase)

    # --- Eq. 9-11: element importance -------------------------------------------------------------
    @torch.no_grad()
    def update_importance(self) -> None:
        """I = |w · ∂L/∂w| (Eq. 9); Ī ← β1 Ī + (1 - β1) I; Ū ← β2 Ū + (1 - β2) |I - Ī| with the freshly
        updated Ī (Eq. 10, as in the official code). A parameter without a gradient counts as I = 0.

        All 3n tensors at once with ``torch._foreach_*`` (a few kernels instead of 7 per tensor on a GPU); each
        element sees the same operations in the same order as the official per-tensor code, so the values are
        bit-identical to it."""
        keys, params, grads = [], [], []
        for module_name, layer in self.layers.items():
            for param_name in PARAMS:
                param = getattr(layer, param_name)
                key = f"{module_name}.{param_name}"
                if key not in self.exp_avg_ipt:
                    self.exp_avg_ipt[key] = torch.zeros_like(param)
                    self.exp_avg_unc[key] = torch.zeros_like(param)
                keys.append(key)
                params.append(param)
                grads.append(param.grad if param.grad is not None else torch.zeros_like(param))
        avg = [self.exp_avg_ipt[key] for key in keys]
        unc = [self.exp_avg_unc[key] for key in keys]
        ipt = torch._foreach_mul(params, grads)
        torch._foreach_abs_(ipt)
        torch._foreach_mul_(avg, self.beta1)  # β1 Ī + (1 - β1) I, in place
        torch._foreach_add_(avg, torch._foreach_mul(ipt, 1 - self.beta1))
        spread = torch._foreach_sub(ipt, avg)
        torch._foreach_abs_(spread)
        torch._foreach_mul_(spread, 1 - self.beta2)
        torch._foreach_mul_(unc, self.beta2)  # β2 Ū + (1 - β2) |I - Ī|, in place
        torch._foreach_add_(unc, spread)

    def element_score(self, key: str) -> torch.Tensor:
        """s = Ī · Ū (Eq. 11)."""
        return self.exp_avg_ipt[key] * self.exp_avg_unc[key]

    def triplet_scores(self) -> dict[str, torch.Tensor]:
        """S_i = s(λ_i) + mean_j s(P_ji) + mean_j s(Q_ij) (Eq. 8), one (r,) vector per matrix."""
        scores = {}
        for module_name in self.layers:
            s_e = self.element_score(f"{module_name}.lora_E").view(-1)  # (r,)
            s_q = self.element_score(f"{module_name}.lora_A").mean(dim=1)  # rows of Q: (r,)
            s_p = self.element_score(f"{module_name}.lora_B").mean(dim=0)  # columns of P: (r,)
            scores[module_name] = s_e + (s_q + s_p)  # official order: E + (A-mean + B-mean)
        return scores

    # --- Eq. 7: keep the top-b(t) triplets globally -------------------------------------------------
    def compute_masks(self, budget: int) -> dict[str, torch.Tensor]:
        """Masks that keep the ``budget`` highest triplet scores over all matrices.

        As in the official code the threshold is the k-th smallest score with k = b(0) - b(t), and every
        score <= threshold is masked, so ties at the threshold can mask a few more than k.
        """
        scores = self.triplet_scores()
        k = self.schedule.b0 - budget
        if k <= 0:
            return {name: torch.ones_like(s, dtype=torch.bool) for name, s in scores.items()}
        threshold = torch.kthvalue(torch.cat(list(scores.values())), k).values.item()
        return {name: s > threshold for name, s in scores.items()}

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Zero masked singular values in place. They stay trainable: the next optimizer steps move them
        again, and only the next mask step (or, once the pattern is fixed, every step) zeroes them once more."""
        for module_name, keep in self.masks.items():
            self.layers[module_name].lora_E.masked_fill_(~keep.view(-1, 1), 0.0)

    def ranks(self) -> dict[str, int]:
        """Kept triplets per matrix, read in one device-to-host copy (mask steps record them: ΔT = 1 is every step)."""
        if not self.masks:
            return {}
        kept = torch.stack([keep.sum() for keep in self.masks.values()]).tolist()
        return {name: int(count) for name, count in zip(self.masks, kept, strict=True)}

    # --- timing -----------------------------------------------------------------------------------
    def configure_timing(self, step_origin: str, final_phase: str) -> None:
        """Set the two timing switches (see ``AdaLoRAConfig``). Changing them once steps were taken (e.g.
        resuming a checkpoint trained with other switches) raises: the schedule would jump by a step."""
        if step_origin not in ("official", "one_based"):
            raise ValueError(f"step_origin must be 'official' or 'one_based', got {step_origin!r}")
        if final_phase not in ("official", "peft"):
            raise ValueError(f"final_phase must be 'official' or 'peft', got {final_phase!r}")
        timing = {"step_origin": step_origin, "final_phase": final_phase}
        if self.timing and timing != self.timing and self.last_step > 0:
            raise ValueError(
                f"AdaLoRA timing {timing} differs from the {self.timing} this allocator ran {self.last_step} "
                "steps with (checkpoint?); resume with the same method.step_origin and method.final_phase"
            )
        self.timing = timing

    def schedule_step(self, step: int) -> int:
        """The schedule step s for loop step t (completed optimizer steps, from 1): t - 1 for ``official``
        (the official trainers call ``update_and_mask(model, global_step)`` before ``global_step += 1``,
        from 0), t for ``one_based``."""
        return step - 1 if self.timing["step_origin"] == "official" else step

    def budget_at(self, step: int) -> int:
        """b(s) for loop step t: the budget the allocator uses at that step."""
        return self.schedule.budget(self.schedule_step(step))

    # --- the per-step entry point -----------------------------------------------------------------
    def step(self, step: int) -> None:
        """Loop step t: update scores (before the final phase), mask at mask steps, re-apply the fixed
        pattern after the fixing step. History entries carry t (``step``) and s (``schedule_step``)."""
        schedule = self.schedule
        final_phase = self.timing["final_phase"]
        s = self.schedule_step(step)
        if not schedule.is_final(s):
            self.update_importance()
        if schedule.is_mask_step(s, final_phase):
            budget = schedule.budget(s)
            self.masks = self.compute_masks(budget)
            self.apply_masks()
            self.history.append({"step": step, "schedule_step": s, "budget": budget, "ranks": self.ranks()})
            if s == schedule.fixing_step(final_phase):
                # The pattern is fixed now; the EMAs are never read again.
                self.exp_avg_ipt, self.exp_avg_unc = {}, {}
        elif s > schedule.fixing_step(final_phase):
            self.apply_masks()
        self.last_step = step

    # --- resume -----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "exp_avg_ipt": {k: v.clone() for k, v in self.exp_avg_ipt.items()},
            "exp_avg_unc": {k: v.clone() for k, v in self.exp_avg_unc.items()},
            "masks": {k: v.clone() for k, v in self.masks.items()},
            "history": [dict(h, ranks=dict(h["ranks"])) for h in self.history],
            "last_step": self.last_step,
            "schedule": self.schedule.to_dict(),
            "timing": dict(self.timing),
        }

    def load_state_dict(self, state: dict) -> None:
        if state["schedule"] != self.schedule.to_dict():
            raise ValueError(
                f"checkpoint budget schedule {state['schedule']} differs from this run's "
                f"{self.schedule.to_dict()}; resume with the same method config and total steps"
            )
        device = next(iter(self.layers.values())).lora_E.device
        self.exp_avg_ipt = {k: v.to(device) for k, v in state["exp_avg_ipt"].items()}
        self.exp_avg_unc = {k: v.to(device) for k, v in state["exp_avg_unc"].items()}
        self.masks = {k: v.to(device) for k, v in state["masks"].items()}
        self.history = [dict(h, ranks=dict(h["ranks"])) for h in state["history"]]
        self.last_step = state["last_step"]
        # Checkpoints from before the timing switches ran with one-based steps and PEFT's final phase.
        self.timing = dict(state.get("timing", {"step_origin": "one_based", "final_phase": "peft"}))
