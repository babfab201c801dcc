"""The contract between the training loop and a PEFT method.

The loop in ``peftbench/train.py`` calls every hook below in exactly one place, in this order::

    model = method.apply(model)                       # inject adapters, freeze the rest
    groups = method.param_groups(model, weight_decay) # main AdamW
    extra = method.extra_optimizers(model, lr)        # e.g. SoRA's proximal gate optimizer
    method.on_train_start(model, total_steps)
    for each optimizer step:
        loss = task_loss + sum(method.extra_losses(model).values())
        backward, clip, optimizer.step()
        method.after_optimizer_step(model, step)      # gradients still present (AdaLoRA)
        scheduler.step(); zero_grad()
        every evaluation: records = method.on_evaluate(model, step)
    method.on_train_end(model)

A method never edits the loss inside ``forward``: regularisers come back to the loop, which adds and logs them.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

MATRIX_TYPES = ("query", "key", "value", "attention_output", "ffn_in", "ffn_out")


@dataclass(frozen=True)
class ModelSpec:
    """What a method needs to know about the backbone: which modules are which matrix type."""

    name: str
    targets: dict[str, str]  # matrix type -> regex that fully matches the module's qualified name
    head_patterns: tuple[str, ...]  # substrings naming the task head (always trainable, counted apart)
    decoder_offset: int = 0  # encoder-decoder models: decoder block i is reported as layer offset + i

    def layer_of(self, module_name: str) -> int:
        """Block index for records and heatmaps; decoder blocks come after the encoder's."""
        index = layer_index(module_name)
        return index + self.decoder_offset if ".decoder." in f".{module_name}" else index

    def matrix_type(self, module_name: str) -> str | None:
        for matrix_type, pattern in self.targets.items():
            if re.fullmatch(pattern, module_name):
                return matrix_type
        return None

    def target_regex(self, types: tuple[str, ...] | None = None) -> str:
        chosen = [self.targets[t] for t in (types or tuple(self.targets))]
        return "|".join(f"(?:{p})" for p in chosen)

    def is_head(self, parameter_name: str) -> bool:
        return any(p in parameter_name for p in self.head_patterns)


def layer_index(module_name: str) -> int:
    """Transformer block index of a module name (``...layer.11.attention...`` -> 11), -1 if it has none.
    Encoder-decoder models restart at 0 in the decoder: use ``ModelSpec.layer_of`` for records."""
    match = re.search(r"\.(\d+)\.", module_name)
    return int(match.group(1)) if match else -1


class Method(ABC):
    """Default hooks: do nothing. Subclasses override what their paper needs."""

    name: str = "base"

    def __init__(self, config: Any, spec: ModelSpec) -> None:
        self.config = config
        self.spec = spec

    @abstractmethod
    def apply(self, model: nn.Module) -> nn.Module:
        """Inject the adapters and freeze what the method does not train; return the model."""

    def param_groups(self, model: nn.Module, weight_decay: float) -> list[dict]:
        """Trainable parameters for the main AdamW, decayed by the rule ``dim >= 2`` (biases and norms not)."""
        params = [(n, p) for n, p in model.named_parameters() if p.requires_grad and n not in self.own_optimized(model)]
        return [
            {"params": [p for n, p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for n, p in params if p.dim() < 2], "weight_decay": 0.0},
        ]

    def own_optimized(self, model: nn.Module) -> set[str]:
        """Names of parameters that the method's extra optimizers update (kept out of the main AdamW)."""
        return set()

    def extra_optimizers(self, model: nn.Module, lr: float) -> list[torch.optim.Optimizer]:
        return []

    def on_train_start(self, model: nn.Module, total_steps: int) -> None:
        pass

    def extra_losses(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return {}

    def after_optimizer_step(self, model: nn.Module, step: int) -> None:
        pass

    def on_evaluate(self, model: nn.Module, step: int) -> dict[str, Any]:
        """Extra records for this evaluation (e.g. ranks); stored in the run's history."""
        return {}

    def on_train_end(self, model: nn.Module) -> dict[str, Any]:
        """Final method records (e.g. final rank pattern), stored under ``method_records`` in run.json."""
        return {}

    def effective_parameters(self, model: nn.Module) -> int:
        """Parameters that remain after training (non-zero ranks, pruned gates); trainable for plain methods."""
        return count_parameters(model, self.spec)["trainable"]

    def planned_effective_parameters(self, model: nn.Module) -> int | None:
        """Adapter parameters expected to remain after training, known before training (the planner prints it);
        None when training decides (SoRA) or nothing is removed (the trainable adapter count applies)."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """Method state that a resumed run needs (importance EMAs, threshold stage, ...)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def count_parameters(model: nn.Module, spec: ModelSpec) -> dict[str, int]:
    """Trainable parameters, split into adapter (method) and task head, plus the total."""
    adapter = head = total = 0
    for name, parameter in model.named_parameters():
        total += parameter.numel()
        if not parameter.requires_grad:
            continue
        if spec.is_head(name):
            head += parameter.numel()
        else:
            adapter += parameter.numel()
    return {"trainable": adapter + head, "adapter": adapter, "head": head, "total": total}


def freeze_except(model: nn.Module, keep: Any) -> None:
    """Train only the parameters for which ``keep(name)`` is true."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(bool(keep(name)))
