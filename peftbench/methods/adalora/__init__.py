"""AdaLoRA (Zhang et al., ICLR 2023): SVD-form adapters with importance-driven global rank allocation.

Where peftbench's AdaLoRA follows the official code (QingruZhang/AdaLoRA, loralib/adalora.py) rather than
the paper's text, and where PEFT (peft 0.21.2) differs from both:

- Budget schedule (Eq. 14, App. A): numerator ``t - t_i`` as in the official code; the paper prints
  ``t - t_i - t_f``, which would start the cubic above b(0). Phase borders ``t <= t_i`` and ``t > T - t_f``
  and the ``int`` floor also follow the code.
- Orthogonal regulariser (Eq. 4): the code's mean over all P and Q of the plain Frobenius norm
  ‖PᵀP - I‖_F, ‖QQᵀ - I‖_F, not the paper's sum of squared norms. The published γ values belong to the code.
- Final phase: the pattern is fixed at step T - t_f (PEFT's ``force_mask``) and re-applied after every
  step. The official code masks at T - t_f only when ΔT divides it and from T - t_f + 1 on every step, with
  the same frozen scores, so the pattern is identical and appears at most one step earlier here.
- Masked singular values keep receiving optimizer updates and come back until the next mask step (official
  and PEFT behaviour): ranks are recorded at mask steps.
- Initial rank 1.5 × r̄ rounded half up (r̄ 1/2/4/8 -> 2/3/6/12); Table 9 lists r̄ 2 with initial rank 4 and
  the released GLUE scripts use r̄ 1 with initial rank 2 or 3: set ``init_rank`` for those.
- PEFT adds γ·R to ``outputs.loss`` inside ``AdaLoraModel.forward``; without a ``task_type`` its
  ``PeftModel.forward`` bypasses that and the regulariser silently disappears. Here it comes back from
  ``extra_losses`` for the loop to add and log. γ = 0 is allowed here and in peft 0.21.2 (before
  huggingface/peft#3438 PEFT's forward raised for γ <= 0).
With those settings the masks and all adapter weights are bit-identical to peft 0.21.2 at every step
(tests/methods/test_adalora.py::test_masks_identical_to_peft_at_every_step).
"""

from peftbench.methods import register
from peftbench.methods.adalora.config import AdaLoRAConfig
from peftbench.methods.adalora.method import AdaLoRAMethod

__all__ = ["AdaLoRAConfig", "AdaLoRAMethod"]

register("adalora", config=AdaLoRAConfig, method=AdaLoRAMethod)
