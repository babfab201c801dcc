"""P-tuning v1 (Liu, Zheng, Du, Ding, Qian, Yang and Tang, "GPT Understands, Too", 2021).

A template T = {[P_0:i], x, [P_{i+1:m}], y} maps its pseudo tokens to trainable embeddings h_i instead of
vocabulary embeddings: {h_0..h_i, e(x), h_{i+1}..h_m, e(y)} (§3.1), and the h_i are produced by a prompt encoder
(§3.2, Eq. 3), a bidirectional LSTM with a two-layer ReLU MLP on top:

    h_i = MLP([→h_i ; ←h_i]) = MLP([LSTM(h_{0:i}) ; LSTM(h_{i:m})])

trained with the task loss; at inference only the output embeddings h are needed and the encoder is dropped.

Kept parameters: l·h (``planned_effective_parameters``; run.json's ``parameters.effective`` = l·h + head).
Trainable while training: the encoder, l·h (position embeddings) + LSTM + MLP (``parameters.adapter``).
On MiniLM (h = 384, l = 20): 2,078,976 trainable (position embeddings 7,680, LSTM 1,775,616, MLP 295,680),
7,680 kept; on DeBERTaV3-base (h = 768): 8,286,720 trainable, 15,360 kept.

Choices and deviations:
- Template: all l pseudo tokens are prepended to the input (PEFT's P-tuning does the same); the paper places
  them around the input and the label slot per task (e.g. (3, 3, 3) for LAMA). The label goes through the task
  head, not through a [MASK] verbaliser.
- Backbone: frozen (the paper's LAMA setting; for SuperGLUE the paper also fine-tunes the language model).
- Encoder: the released code's shapes (LSTM h/2 units per direction, 2 layers, MLP h → h → h); ``encoder=mlp``
  replaces the LSTM by nothing (embedding → MLP), the PEFT variant of that name.
- lr: the encoder trains at ``prompt_lr`` (default 3e-2), the head at ``trainer.lr``; the paper's lr are for
  full-model tuning. ``drop_encoder`` runs in ``on_train_end`` (after the test evaluation): the model then holds
  a fixed l × h prompt with the same predictions.
- Encoder-decoder models (BART): the prompt goes in front of the encoder input only; see ``prompt/seam.py``.
"""

from peftbench.methods import register
from peftbench.methods.ptuning.config import PTuningConfig

register("ptuning", config=PTuningConfig, method="peftbench.methods.ptuning.method:PTuningMethod",
         knob="num_virtual_tokens", knob_kind="virtual_tokens",
         budget_binds="effective")  # the encoder is dropped after training; l·h remain
