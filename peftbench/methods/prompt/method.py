from __future__ import annotations

from abc import abstractmethod
from typing import Any

from torch import nn

from peftbench.methods.base import Method, freeze
from peftbench.methods.prompt import seam
from peftbench.methods.prompt.config import PromptConfig
from peftbench.methods.prompt.layer import SoftPrompt, initial_prompt, special_token_ids


class VirtualTokenMethod(Method):
    """Shared body of the input-level prompt methods: a submodule ``module_name`` of the model returns the l × h
    virtual token embeddings; :meth:`prepare_inputs` inserts them into every input (``seam.insert``: after the
    first token on encoder-only models). Subclasses build the module."""

    module_name: str = "soft_prompt"

    @abstractmethod
    def build(self, model: nn.Module, embedding: nn.Module) -> nn.Module:
        """The module that returns the l × h virtual token embeddings."""

    @property
    def length(self) -> int:
        return int(self.config.num_virtual_tokens)

    def apply(self, model: nn.Module) -> nn.Module:
        if hasattr(model, self.module_name):
            raise ValueError(f"{self.name}: the model already has a {self.module_name!r} module")
        embedding = model.get_input_embeddings()
        if embedding is None:
            raise ValueError(f"{self.name}: model {type(model).__name__} exposes no input embeddings")
        seam.check_length(self.name, self.length, model)
        model.add_module(self.module_name, self.build(model, embedding))
        freeze(model, self.spec)
        self._shift = seam.output_shift(model, self.length)
        return model

    def virtual_tokens(self) -> int:
        """Positions the per-token outputs gain in front: l, or 0 on encoder-decoder models, where the prompt
        goes into the encoder only and per-token outputs (BART's QA logits) come from the decoder."""
        return getattr(self, "_shift", self.length)

    def virtual_token_position(self) -> int:
        """After the first token on encoder-only models (see ``seam.insert``); 0 where nothing shifts."""
        return seam.INSERT_AT if self.virtual_tokens() else 0

    def prepare_inputs(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
        prompt = model.get_submodule(self.module_name)()
        return seam.insert(self.name, model, batch, prompt)

    def hidden_size(self, model: nn.Module) -> int:
        return int(model.get_input_embeddings().weight.shape[1])

    def param_groups(self, model: nn.Module, weight_decay: float) -> list[dict]:
        """The base rule (decay on ``dim >= 2``) with the prompt parameters in groups of their own at ``prompt_lr``
        (the head keeps ``trainer.lr``)."""
        prefix = f"{self.module_name}."
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        rest = [(n, p) for n, p in trainable if not n.startswith(prefix)]
        prompt = [(n, p) for n, p in trainable if n.startswith(prefix)]
        lr = {} if self.config.prompt_lr is None else {"lr": self.config.prompt_lr}
        groups = [
            {"params": [p for _, p in rest if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for _, p in rest if p.dim() < 2], "weight_decay": 0.0},
            {"params": [p for _, p in prompt if p.dim() >= 2], "weight_decay": weight_decay, **lr},
            {"params": [p for _, p in prompt if p.dim() < 2], "weight_decay": 0.0, **lr},
        ]
        return [g for g in groups if g["params"]]

    def on_train_end(self, model: nn.Module) -> dict[str, Any]:
        records = super().on_train_end(model)
        records.update(virtual_tokens=self.length, kept_parameters=self.length * self.hidden_size(model))
        return records


class PromptMethod(VirtualTokenMethod):
    """Prompt tuning (Lester et al., EMNLP 2021). See ``peftbench/methods/prompt/__init__.py``."""

    name = "prompt"
    module_name = "soft_prompt"
    config: PromptConfig

    def build(self, model: nn.Module, embedding: nn.Module) -> nn.Module:
        config = self.config
        initial = initial_prompt(embedding, self.length, config.init, config.init_token_ids,
                                 special_token_ids(seam.encoder_config(model)) | special_token_ids(model.config))
        return SoftPrompt(initial)
