"""Pfeiffer adapters (Pfeiffer et al., "AdapterFusion: Non-Destructive Task Composition for Transfer
Learning", EACL 2021, Sec. 3 and App. A, the architecture their search selected).

One adapter per Transformer block, after the FFN only, with a ReLU:

    Ψ(h, r) = U ReLU(D h) + r        (Pfeiffer et al., single-task adapter; D: d x h, U: h x d)

L(2hd + d + h) parameters (DeBERTaV3-base d = 16 / 32 / 64 -> 304,320 / 599,424 / 1,189,632; AdaLoRA Table 1
prints 0.30M / 0.60M / 1.18M, and 1.18M matches no d). U, its bias = 0: the identity at step 0.

Where this differs from the source:
- Input and residual. Pfeiffer et al. (and AdaLoRA's PAdapter code) feed the adapter h = LayerNorm(z' + y), the
  block's output after its Add & Norm, take r = z' (the FFN output), and apply the same LayerNorm once more:
  LayerNorm(Ψ(LayerNorm(z' + y), z') + y). We use the sequential form of Houlsby's placement at the FFN site,
  z' + U ReLU(D z'), before dropout, residual and LayerNorm: same parameters and count, the identity at step 0
  in both, but the adapter sees the un-normalised FFN output. The source's form needs the block's residual
  input and its LayerNorm, which no matrix-type role exposes generically.
- Init: U = 0 exactly (the sources initialise near zero).
On BART: every encoder and decoder layer's ``fc2`` (none on cross-attention, which has no FFN of its own).
"""

from __future__ import annotations

from peftbench.methods.houlsby.method import HoulsbyMethod
from peftbench.methods.pfeiffer.config import PfeifferConfig


class PfeifferMethod(HoulsbyMethod):
    """Houlsby's injection and freezing with Pfeiffer's sites and nonlinearity (set by its config)."""

    name = "pfeiffer"
    config: PfeifferConfig
