"""P-tuning's prompt encoder (Liu et al. 2021, §3.2) and the fixed prompt it leaves behind."""

from __future__ import annotations

import torch
from torch import nn


class PromptEncoder(nn.Module):
    """h_i = MLP([→h_i ; ←h_i]) with →h_i = LSTM→(e_{0:i}), ←h_i = LSTM←(e_{i:l}) over trainable position
    embeddings e_1..e_l (Liu et al. 2021, Eq. 3; ``lstm``), or h_i = MLP(e_i) (``mlp``). Returns the l × h virtual
    token embeddings. Only its output is kept after training (:func:`export`)."""

    def __init__(self, length: int, hidden: int, kind: str = "lstm", width: int | None = None,
                 lstm_layers: int = 2, lstm_dropout: float = 0.0) -> None:
        super().__init__()
        width = width or hidden
        self.kind = kind
        self.embedding = nn.Embedding(length, hidden)
        if kind == "lstm":
            self.lstm = nn.LSTM(input_size=hidden, hidden_size=width // 2, num_layers=lstm_layers,
                                dropout=lstm_dropout if lstm_layers > 1 else 0.0, bidirectional=True,
                                batch_first=True)
            self.mlp = nn.Sequential(nn.Linear(2 * (width // 2), width), nn.ReLU(), nn.Linear(width, hidden))
            self.adapter_names = ("embedding", "lstm", "mlp")
        else:
            self.lstm = None
            self.mlp = nn.Sequential(nn.Linear(hidden, width), nn.ReLU(), nn.Linear(width, hidden))
            self.adapter_names = ("embedding", "mlp")
        self.register_buffer("positions", torch.arange(length), persistent=False)

    @property
    def num_virtual_tokens(self) -> int:
        return self.embedding.num_embeddings

    def forward(self) -> torch.Tensor:
        embeds = self.embedding(self.positions).unsqueeze(0)
        if self.lstm is not None:
            embeds = self.lstm(embeds)[0]
        return self.mlp(embeds).squeeze(0)


def export(encoder: PromptEncoder) -> torch.Tensor:
    """The l × h embeddings the trained encoder produces (eval mode: no LSTM dropout): what P-tuning keeps."""
    training = encoder.training
    encoder.eval()
    with torch.no_grad():
        prompt = encoder().detach().clone()
    encoder.train(training)
    return prompt
