"""Prompt tuning (Lester, Al-Rfou and Constant, "The Power of Scale for Parameter-Efficient Prompt Tuning",
EMNLP 2021).

Model: a frozen network with embedding E and weights θ; the input X = [x_1..x_n] becomes X_e = E(X) ∈ R^{n×h};
prompt tuning learns P_e ∈ R^{l×h} and feeds the concatenation [P_e; X_e] ∈ R^{(l+n)×h}:

    max_{θ_P} log Pr_{θ; θ_P}(Y | [P; X])          (Lester et al. §2, Eq. 2: only θ_P is updated)

Kept (and trained) parameters: l·h (plus the task head, which every method here trains).

Choices and deviations (each configurable in ``config.py``):
- Length l = 20 by default (Fig. 3a: beyond 20 tokens the gains are marginal for all but the smallest model).
  No paper budget gives l for our budget groups, so ``conf/budget`` sets no ``knobs.prompt``.
- Init: ``vocab`` (their "sampled vocab"; the best init is "class label", which needs verbalised label words: our
  classification heads predict through a classifier, not through label words, so that init only exists as
  ``init=ids`` with user-given ids). We sample from the whole vocabulary minus special tokens, not from the
  5,000 most frequent tokens (no token frequencies without the tokenizer). On small encoders whose head reads
  [CLS] this default misleads: 20 distinct words take over half of MiniLM's [CLS] attention and leave [CLS]
  nearly input-independent (chance on the short learning check); a few label words cycled to length l do not
  (``conf/method_hparams/quick/prompt_rotten_tomatoes.yaml``, README "Does every method learn?").
- Output: the paper is text-to-text on T5 (labels are generated words); here the task head of each family reads
  the prompted encoder (classification / QA heads train as with every method).
- Optimiser: the paper uses Adafactor with lr 0.3 for 30,000 steps; here AdamW through the shared loop, with the
  prompt in its own parameter groups at ``prompt_lr`` (default 3e-2, as PEFT's prompt-tuning examples use with
  AdamW). At the shared trainer lr (1e-3) a 126-step run moves the prompt by about 0.1 per coordinate, against
  embedding entries of size ~0.05: measured numbers in the README.
- Encoder-decoder models (BART): the prompt goes in front of the encoder input only; see ``seam.py``.
"""

from peftbench.methods import register
from peftbench.methods.prompt.config import PromptConfig

register("prompt", config=PromptConfig, method="peftbench.methods.prompt.method:PromptMethod",
         knob="num_virtual_tokens", knob_kind="virtual_tokens")
