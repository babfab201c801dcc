"""The contract between the training loop and a PEFT method.

The loop in ``peftbench/train.py`` calls every hook below in exactly one place, in this order::

    model = method.apply(model)                       # inject adapters, freeze the rest
    groups = method.param_groups(model, weight_decay) # main AdamW
    extra = method.extra_optimizers(model, lr)        # e.g. SoRA's proximal gate optimizer
    method.on_train_start(model, total_steps)
    for each optimizer step:
        batch = method.prepare_inputs(model, batch)   # the input seam (virtual tokens, prefixes); also in predict
        loss = task_loss + sum(method.extra_losses(model).values())
        backward, clip, optimizer.step()
        method.after_optimizer_step(model, step)      # gradients still present (AdaLoRA)
        scheduler.step(); zero_grad()
        every evaluation: records = method.on_evaluate(model, step)
    method.on_train_end(model)

A method never edits the loss inside ``forward``: regularisers come back to the loop, which adds and logs them.

What is generic, so that a method folder holds only its math and hooks:
- *Injection*: :func:`inject` walks the model once and swaps every ``nn.Linear`` of the chosen matrix types for
  the method's module.
- *Declared parameters*: every injected module names its adapter parameters in ``adapter_names`` (PEFT's layers
  in ``adapter_layer_names``). :func:`adapter_parameters`, :func:`freeze`, :func:`count_parameters` and
  :func:`matrix_records` work from that declaration alone, never from parameter-name matching per method.
- *Capabilities* (``knob``, ``knob_kind``, ``budget_binds``, ``sparsifiable``, ``families``, ``quantization``;
  see :class:`peftbench.methods.Capabilities`) are declared in the method's ``register(...)`` call, where the
  planner, the config checks and the recipes read them without torch (instead of ``hasattr`` or method names),
  and are copied onto the registered class as class attributes.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from peftbench.methods import BINDS, CAPABILITIES, capabilities_of
from peftbench.models.roles import MATRIX_TYPES, ModelSpec, layer_index


class Method(ABC):
    """Default hooks do nothing; subclasses override what their paper needs (capabilities: see ``register``)."""

    name: ClassVar[str] = "base"
    # Capabilities (see peftbench.methods.Capabilities): set from the registration of ``name``, never here.
    knob: ClassVar[str | None] = None
    knob_kind: ClassVar[str | None] = None
    budget_binds: ClassVar[str] = "trainable"
    sparsifiable: ClassVar[bool] = False
    families: ClassVar[frozenset[str] | None] = None
    quantization: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A registered method class takes its capabilities from its ``register`` call, their one place; a class
        that declares one itself would disagree with what the config checks and the planner read."""
        super().__init_subclass__(**kwargs)
        declared = capabilities_of(cls.__dict__.get("name", ""))
        if declared is None:
            return
        own = [key for key in CAPABILITIES if key in cls.__dict__]
        if own:
            raise TypeError(f"method {cls.name}: {', '.join(own)} declared on {cls.__name__}; declare capabilities "
                            f"in register(...) in peftbench/methods/{cls.name}/__init__.py")
        for key in CAPABILITIES:
            setattr(cls, key, getattr(declared, key))

    def __init__(self, config: Any, spec: ModelSpec) -> None:
        self.config = config
        self.spec = spec

    @abstractmethod
    def apply(self, model: nn.Module) -> nn.Module:
        """Inject the adapters and freeze what the method does not train; return the model."""

    def trains_backbone_parameter(self, name: str) -> bool:
        """Backbone parameters (outside injected modules and the head) this method trains: BitFit's biases."""
        return False

    def prepare_inputs(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
        """The input seam, called on every batch right before ``model(**batch)`` and ``model.generate(**batch)``.

        Methods that change the inputs or the attention (soft prompts, per-layer prefixes) return a new batch,
        e.g. with ``inputs_embeds`` and a longer ``attention_mask``, or with ``past_key_values``. They must also
        report how many positions they put in front of the input in :meth:`virtual_tokens`, so that span labels
        (extractive QA) stay right."""
        return batch

    def virtual_tokens(self) -> int:
        """Positions :meth:`prepare_inputs` inserts into every input sequence (0 for module-level methods)."""
        return 0

    def virtual_token_position(self) -> int:
        """Where those positions start: 0 = in front of the input; 1 = right after its first token (the [CLS] /
        <s> that classification heads, and SQuAD v2's null answer, read)."""
        return 0

    def param_groups(self, model: nn.Module, weight_decay: float) -> list[dict]:
        """Trainable parameters for the main AdamW, decayed by the rule ``dim >= 2`` (biases and norms not)."""
        own = self.own_optimized(model)
        params = [(n, p) for n, p in model.named_parameters() if p.requires_grad and n not in own]
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

    def final_ranks(self, model: nn.Module) -> dict[str, int] | None:
        """Rank kept by each adapted matrix at the end (None for methods without ranks)."""
        return None

    def on_train_end(self, model: nn.Module) -> dict[str, Any]:
        """Final method records, stored under ``method_records`` in run.json: the adapted matrices (generic) and
        their final ranks where the method has ranks. Subclasses add their own keys."""
        records: dict[str, Any] = {"matrices": matrix_records(model, self.spec)}
        ranks = self.final_ranks(model)
        if ranks is not None:
            records["final_ranks"] = ranks
        return records

    def effective_parameters(self, model: nn.Module) -> int:
        """Parameters that remain after training (non-zero ranks, pruned gates) plus the head; all trainable
        parameters for methods that remove nothing."""
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


# --- generic pieces built on the declarations ------------------------------------------------------------


class LinearWrapper(nn.Module):
    """A module that wraps a frozen ``nn.Linear`` kept as ``self.base`` and reports its shape (records, counts)."""

    base: nn.Linear

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features



def declared_names(module: nn.Module) -> tuple[str, ...]:
    """Attribute names holding a module's adapter weights: ours declare ``adapter_names``, PEFT's layers
    ``adapter_layer_names``; a plain module declares nothing."""
    return tuple(getattr(module, "adapter_names", ()) or getattr(module, "adapter_layer_names", ()))


def adapted_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Every injected module (one that declares adapter parameters), by qualified name, in model order."""
    return {name: module for name, module in model.named_modules() if declared_names(module)}


def adapter_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The parameters the injected modules declare, by qualified parameter name."""
    found: dict[str, nn.Parameter] = {}
    for module_name, module in adapted_modules(model).items():
        for attribute in declared_names(module):
            holder = getattr(module, attribute, None)
            if isinstance(holder, nn.Parameter):
                found[f"{module_name}.{attribute}"] = holder
            elif isinstance(holder, nn.Module):
                found.update({f"{module_name}.{attribute}.{n}": p for n, p in holder.named_parameters()})
    return found


def freeze(model: nn.Module, spec: ModelSpec, backbone: Callable[[str], bool] = lambda name: False) -> None:
    """Train the declared adapter parameters, the task head and the backbone parameters ``backbone(name)``
    selects; freeze everything else."""
    adapter = set(adapter_parameters(model))
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in adapter or spec.is_head(name) or backbone(name))


def count_parameters(model: nn.Module, spec: ModelSpec) -> dict[str, int]:
    """Trainable parameters split three ways, plus the total.

    ``head``: the task head (see ``ModelSpec.heads``); ``adapter``: everything else the method trains, i.e. the
    injected modules' declared parameters plus ``other``, the backbone parameters it unfreezes (BitFit's biases,
    full fine-tuning's weights, LayerNorms); ``total``: every parameter of the model, frozen ones included.
    """
    declared = set(adapter_parameters(model))
    counts = dict.fromkeys(("trainable", "adapter", "head", "other", "total"), 0)
    for name, parameter in model.named_parameters():
        size = _true_numel(parameter)
        counts["total"] += size
        if not parameter.requires_grad:
            continue
        counts["trainable"] += size
        if spec.is_head(name):
            counts["head"] += size
        else:
            counts["adapter"] += size
            counts["other"] += 0 if name in declared else size
    return counts


def _true_numel(parameter: torch.Tensor) -> int:
    """Logical size of a parameter: 4-bit packed weights (bitsandbytes ``Params4bit``) store two values a byte
    and carry their logical shape in ``quant_state``."""
    state = getattr(parameter, "quant_state", None)
    shape = getattr(state, "shape", None)
    return int(torch.Size(shape).numel()) if shape is not None else parameter.numel()


def matrix_records(model: nn.Module, spec: ModelSpec) -> dict[str, dict[str, Any]]:
    """Block index, matrix type and shape of every injected module (the ``matrices`` record of run.json)."""
    return {
        name: {"layer": spec.layer_of(name), "type": spec.matrix_type(name),
               "in_features": module.in_features, "out_features": module.out_features}
        for name, module in adapted_modules(model).items()
        if hasattr(module, "in_features")
    }


def inject(model: nn.Module, spec: ModelSpec, types: tuple[str, ...] | list[str],
           build: Callable[[str, nn.Linear], nn.Module]) -> list[str]:
    """Replace every ``nn.Linear`` whose qualified name is of one of the matrix ``types`` by ``build(name, linear)``;
    return the names replaced. One walk over the model for every module-replacing method."""
    available = [t for t in types if t in spec.targets]
    if not available:
        raise ValueError(f"none of the matrix types {list(types)} is defined for model {spec.name}")
    pattern = spec.target_regex(tuple(available))
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and re.fullmatch(pattern, n)]
    if not names:
        raise ValueError(f"no nn.Linear in {spec.name} matches the matrix types {available} (regex {pattern!r})")
    for name in names:
        replace_module(model, name, build(name, model.get_submodule(name)))
    return names


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def freeze_except(model: nn.Module, keep: Callable[[str], bool]) -> None:
    """Train only the parameters for which ``keep(name)`` is true."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(bool(keep(name)))


__all__ = ["BINDS", "MATRIX_TYPES", "LinearWrapper", "Method", "ModelSpec", "adapted_modules", "adapter_parameters",
           "count_parameters", "declared_names", "freeze", "freeze_except", "inject", "layer_index",
           "matrix_records", "replace_module"]
