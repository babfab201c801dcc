"""SoRA's gate optimizer: an Adam step on the gates followed by a proximal (thresholding) step.

Paper (Ding et al., EMNLP 2023, Eq. 9-10): g_{t+1} = T_{eta_t * xi}(g_t - eta_t * grad), with the
soft-threshold T_a(x) = sign(x) * max(|x| - a, 0). The authors' code (src/sparse_optimizer.py, the file
run_glue.py imports) differs in two ways, both selectable here:

- the threshold is xi itself, not eta_t * xi (``threshold_times_lr=False``; a variant that multiplies by
  the lr, src/sparse_optimizer_multiply_lr.py, exists but no released script uses it);
- it thresholds with three in-place masked ops in sequence (``mode="official"``), which also zeroes every
  gate with |g| < 2 xi: with xi = 0.1, [-0.25, -0.15, 0.05, 0.15, 0.2, 0.5] -> [-0.15, 0, 0, 0, 0.1, 0.4],
  where the exact soft-threshold gives [-0.15, -0.05, 0, 0.05, 0.1, 0.4].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch


def soft_threshold(x: torch.Tensor, xi: float) -> torch.Tensor:
    """Exact proximal operator of xi * |x| (paper Eq. 10)."""
    return torch.sign(x) * torch.clamp(x.abs() - xi, min=0.0)


def official_threshold(x: torch.Tensor, xi: float) -> torch.Tensor:
    """The authors' three masked ops, each reading the result of the one before (so not a soft-threshold)."""
    x = x.clone()
    x[x > xi] -= xi
    x[x < -xi] += xi
    x[x.abs() < xi] = 0.0
    return x


THRESHOLDS: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "exact": soft_threshold,
    "official": official_threshold,
}


class ProximalAdam(torch.optim.Optimizer):
    """Adam (transformers.AdamW form, as the authors use: bias correction folded into the step size,
    eps added to sqrt(v)) followed by thresholding every parameter at ``threshold``.

    ``threshold`` is an attribute, not a param-group entry, so the method object stays its single owner
    (the sparsifying scheduler changes it through ``SoRAMethod.set_threshold``); ``lr`` lives in the groups
    so the loop's scheduler drives it. eps 1e-6 and no weight decay are transformers.AdamW's defaults, which
    the authors keep for the gates.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float,
        threshold: float = 0.0,
        mode: str = "official",
        threshold_times_lr: bool = False,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
    ) -> None:
        if mode not in THRESHOLDS:
            raise ValueError(f"threshold mode must be one of {tuple(THRESHOLDS)}, got {mode!r}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})
        self.threshold = threshold
        self.mode = mode
        self.threshold_times_lr = threshold_times_lr

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(p.grad, alpha=1.0 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(p.grad, p.grad, value=1.0 - beta2)
                step_size = group["lr"] * math.sqrt(1.0 - beta2 ** state["step"]) / (1.0 - beta1 ** state["step"])
                update = exp_avg / (exp_avg_sq.sqrt() + group["eps"]) * step_size
                if group["weight_decay"] > 0:
                    update += group["lr"] * group["weight_decay"] * p  # decoupled, from the pre-step value
                p.sub_(update)
                xi = self.threshold * group["lr"] if self.threshold_times_lr else self.threshold
                if xi > 0:
                    p.copy_(THRESHOLDS[self.mode](p, xi))
        return loss
