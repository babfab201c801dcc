"""P-tuning v1 settings. Defaults follow the authors' released prompt encoder (THUDM/P-tuning, ``PromptEncoder``):
an embedding of the l prompt positions, a 2-layer bidirectional LSTM of h/2 units per direction (output h), an
MLP h → h → h with ReLU, LSTM dropout 0; l = 20 (no paper value for our budgets)."""

from __future__ import annotations

from dataclasses import dataclass, field

from peftbench.methods.prompt.config import check_common

ENCODERS = ("lstm", "mlp")


@dataclass
class PTuningConfig:
    num_virtual_tokens: int = field(default=20, metadata={"help": "l: virtual tokens prepended to the input"})
    encoder: str = field(default="lstm", metadata={
        "help": "prompt encoder: lstm (bi-LSTM + MLP, the paper's) or mlp (embedding + 2-layer MLP)"})
    encoder_hidden_size: int | None = field(default=None, metadata={
        "help": "m: MLP width and LSTM output width (m/2 per direction); null = the model's embedding size h"})
    lstm_layers: int = field(default=2, metadata={"help": "LSTM layers (authors: 2)"})
    lstm_dropout: float = field(default=0.0, metadata={"help": "dropout between LSTM layers (authors: 0)"})
    prompt_lr: float | None = field(default=3.0e-2, metadata={
        "help": "learning rate of the prompt encoder; null = trainer.lr (the head always uses trainer.lr)"})

    def __post_init__(self) -> None:
        check_common(self.num_virtual_tokens, self.prompt_lr, "ptuning")
        if self.encoder not in ENCODERS:
            raise ValueError(f"method.encoder must be one of {list(ENCODERS)}, got {self.encoder!r}")
        if self.encoder_hidden_size is not None and self.encoder_hidden_size < 2:
            raise ValueError(f"method.encoder_hidden_size must be >= 2 or null, got {self.encoder_hidden_size}")
        if self.lstm_layers < 1:
            raise ValueError(f"method.lstm_layers must be >= 1, got {self.lstm_layers}")
        if not 0.0 <= self.lstm_dropout < 1.0:
            raise ValueError(f"method.lstm_dropout must lie in [0, 1), got {self.lstm_dropout}")
