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
    """The authors' three masked ops, each reading the result of the one before (so not a soft-threshold).
    Written with ``torch.where``: the same values as their boolean-mask indexing, without its host sync."""
    x = torch.where(x > xi, x - xi, x)
    x = torch.where(x < -xi, x + xi, x)
    return torch.where(x.abs() < xi, 0.0, x)


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
            self._group_step(group)
        return loss

    def _group_step(self, group: dict) -> None:
        """All gates of the group at once with ``torch._foreach_*`` and one thresholding of their concatenation;
        per element the operations and their order are those of a per-gate Adam step, so the values are too."""
        beta1, beta2 = group["betas"]
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        for p in params:
            if not self.state[p]:
                self.state[p].update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
            self.state[p]["step"] += 1
        grads = [p.grad for p in params]
        exp_avg = [self.state[p]["exp_avg"] for p in params]
        exp_avg_sq = [self.state[p]["exp_avg_sq"] for p in params]
        torch._foreach_mul_(exp_avg, beta1)
        torch._foreach_add_(exp_avg, grads, alpha=1.0 - beta1)
        torch._foreach_mul_(exp_avg_sq, beta2)
        torch._foreach_addcmul_(exp_avg_sq, grads, grads, value=1.0 - beta2)
        steps = [self.state[p]["step"] for p in params]
        step_size = [group["lr"] * math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t) for t in steps]
        denominator = torch._foreach_sqrt(exp_avg_sq)
        torch._foreach_add_(denominator, group["eps"])
        update = torch._foreach_div(exp_avg, denominator)
        torch._foreach_mul_(update, step_size)
        if group["weight_decay"] > 0:  # decoupled, from the pre-step value
            torch._foreach_add_(update, torch._foreach_mul(params, group["lr"] * group["weight_decay"]))
        torch._foreach_sub_(params, update)
        xi = self.threshold * group["lr"] if self.threshold_times_lr else self.threshold
        if xi > 0:
            flat = THRESHOLDS[self.mode](torch.cat([p.reshape(-1) for p in params]), xi)
            torch._foreach_copy_(params, [t.view_as(p) for t, p in zip(flat.split([p.numel() for p in params]),
                                                                         params, strict=True)])
