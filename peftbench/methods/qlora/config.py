from __future__ import annotations

from dataclasses import dataclass

from peftbench.methods.lora.config import LoRAConfig


@dataclass
class QLoRAConfig(LoRAConfig):
    """QLoRA (Dettmers et al., NeurIPS 2023): LoRA's update h = W0 x + (alpha / r) B A x, with the frozen W0 stored
    in 4-bit NormalFloat (NF4), its quantisation constants quantised again (double quantisation) and the matmul
    computed in bfloat16. The backbone precision is a model axis (``model.quantization=nf4``, loaded by
    ``peftbench.models.quantization_args``); this config holds only the adapter, exactly LoRA's knobs.

    Defaults are LoRA's (r 8, alpha 16, dropout 0, the six matrix types of AdaLoRA Table 1), so that qlora vs lora
    isolates the backbone precision. The paper's LLaMA runs used r 64, alpha 16, dropout 0.1 (0.05 from 33B up)
    on every linear layer of the blocks, which the six types are for BERT-like encoders."""
