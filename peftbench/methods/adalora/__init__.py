"""AdaLoRA (Zhang et al., ICLR 2023): SVD-form adapters with importance-driven global rank allocation.

Where peftbench's AdaLoRA follows the official code (QingruZhang/AdaLoRA, loralib/adalora.py) rather than
the paper's text, and where PEFT (peft 0.21.2) differs from both:

- Budget schedule (Eq. 14, App. A): numerator ``t - t_i`` as in the official code; the paper prints
  ``t - t_i - t_f``, which would start the cubic above b(0). Phase borders ``t <= t_i`` and ``t > T - t_f``
  and the ``int`` floor also follow the code.
- Orthogonal regulariser (Eq. 4): the code's mean over all P and Q of the plain Frobenius norm
  ‖PᵀP - I‖_F, ‖QQᵀ - I‖_F, not the paper's sum of squared norms. The published γ values belong to the code.
- Step origin (``step_origin``, default ``"official"``): the official trainers (NLU/NLG_QA
  ``src/transformers/trainer.py``, ``run_summarization_no_trainer.py``, the README example) call
  ``update_and_mask(model, global_step)`` after ``optimizer.step()`` and before ``global_step += 1``, from 0,
  so their schedule step is t - 1 for the loop's t-th step (t from 1) and runs to T - 1. ``"one_based"`` passes
  t (peftbench before this switch; peft driven with steps 1..T): every phase border, mask step and the last
  importance update come one step earlier than in the official runs.
- Final phase (``final_phase``, default ``"official"``): the official allocator masks at T - t_f only when ΔT
  divides it and at every step after with importance frozen since T - t_f - 1, so the final pattern appears
  at T - t_f + 1 when ΔT does not divide T - t_f. ``"peft"`` fixes it at T - t_f always (PEFT's
  ``force_mask``): same pattern, one step earlier, weights drift apart from then on. Once fixed, the pattern
  is re-applied after every step (the official code recomputes it from the same frozen scores: identical).
  Both timings are checked step by step against a re-statement of the official allocator
  (tests/methods/test_adalora_official.py).
- Masked singular values keep receiving optimizer updates and come back until the next mask step (official
  and PEFT behaviour): ranks are recorded at mask steps.
- Initial rank 1.5 × r̄ rounded half up (r̄ 1/2/4/8 -> 2/3/6/12); Table 9 lists r̄ 2 with initial rank 4 and
  the released GLUE scripts use r̄ 1 with initial rank 2 or 3: set ``init_rank`` for those.
- PEFT adds γ·R to ``outputs.loss`` inside ``AdaLoraModel.forward``; without a ``task_type`` its
  ``PeftModel.forward`` bypasses that and the regulariser silently disappears. Here it comes back from
  ``extra_losses`` for the loop to add and log. γ = 0 is allowed here and in peft 0.21.2 (before
  huggingface/peft#3438 PEFT's forward raised for γ <= 0).
With ``step_origin="one_based", final_phase="peft"`` the masks and all adapter weights are bit-identical to
peft 0.21.2 driven with steps 1..T at every step
(tests/methods/test_adalora.py::test_masks_identical_to_peft_at_every_step).
"""

from peftbench.methods import register
from peftbench.methods.adalora.config import AdaLoRAConfig

__all__ = ["AdaLoRAConfig"]

register("adalora", config=AdaLoRAConfig, method="peftbench.methods.adalora.method:AdaLoRAMethod",
         knob="target_rank", knob_kind="rank",
         budget_binds="effective")  # the paper's budget is b(T), the total rank left after training
