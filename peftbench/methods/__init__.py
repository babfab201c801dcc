"""Method registry: one folder per method, registered by its lower-case name.

Adding a method touches only ``peftbench/methods/<name>/`` (config.py, layer.py, method.py, and an
``__init__`` that calls :func:`register`) plus ``conf/method/<name>.yaml``.

The registry imports without torch, so that a bad config fails in a fraction of a second: ``__init__`` imports
only the method's config module (dataclasses, no torch) and names its method class by dotted path,
``"peftbench.methods.lora.method:LoRAMethod"``, imported on first use of ``get(name).method``. The capabilities
that the config checks, the budget and the planner read (``knob``, ``knob_kind``, ``budget_binds``,
``sparsifiable``, ``families``, ``quantization``) are declared in the same ``register`` call, their one place;
the method class receives them as class attributes when it is defined (``Method.__init_subclass__``).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any

from peftbench.models.roles import MATRIX_TYPES, ModelSpec

BINDS = ("trainable", "effective")


@dataclass(frozen=True)
class Capabilities:
    """What a method is, for everything that does not run it (config checks, budgets, planner, recipes)."""

    knob: str | None = None  # config field a budget sets (r, target_rank, bottleneck, num_virtual_tokens)
    knob_kind: str | None = None  # "rank": the budget's rank applies; other kinds need a per-method value
    budget_binds: str = "trainable"  # which count a parameter cap binds: trainable or final effective
    sparsifiable: bool = False  # the sora_sparsity recipe may raise its threshold stage by stage
    families: frozenset[str] | None = None  # task families it supports; None = every family
    quantization: str | None = None  # backbone precision it requires (model.quantization); None = any

    def __post_init__(self) -> None:
        if self.budget_binds not in BINDS:
            raise ValueError(f"budget_binds must be one of {list(BINDS)}, got {self.budget_binds!r}")
        if self.knob_kind is not None and self.knob is None:
            raise ValueError("knob_kind without a knob")


CAPABILITIES = tuple(f.name for f in dataclasses.fields(Capabilities))


@dataclass(frozen=True)
class MethodEntry:
    """A registered method: its name, config class, capabilities, and its method class, imported on first use."""

    name: str
    config: type
    capabilities: Capabilities
    method_path: str  # "package.module:Class"

    @property
    def method(self) -> type:
        """The method class (imports its module, hence torch)."""
        module, _, attribute = self.method_path.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def with_knob(self, config: Any, value: int) -> Any:
        """A copy of ``config`` with the budget knob set; the config's own checks run again."""
        if self.capabilities.knob is None:
            raise ValueError(f"method {self.name} has no budget knob")
        return dataclasses.replace(config, **{self.capabilities.knob: value})


_REGISTRY: dict[str, MethodEntry] = {}


def register(name: str, *, config: type, method: str, **capabilities: Any) -> None:
    """Register method ``name``: its config dataclass, its method class as ``"module:Class"`` (not imported
    here) and its capabilities (the fields of :class:`Capabilities`; unset ones keep their defaults)."""
    if name != name.lower() or not name.isidentifier():
        raise ValueError(f"method names are lower-case identifiers, got {name!r}")
    if name in _REGISTRY:
        raise ValueError(f"method {name!r} is registered twice")
    module, colon, attribute = method.partition(":")
    if not colon or not module or not attribute.isidentifier():
        raise ValueError(f"method {name!r}: give the method class as 'package.module:Class', got {method!r}")
    unknown = sorted(set(capabilities) - set(CAPABILITIES))
    if unknown:
        raise ValueError(f"method {name!r}: unknown capabilities {unknown}; allowed {list(CAPABILITIES)}")
    if capabilities.get("families") is not None:
        capabilities["families"] = frozenset(capabilities["families"])
    _REGISTRY[name] = MethodEntry(name, config, Capabilities(**capabilities), method)


def _discover() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.ispkg:
            importlib.import_module(f"{__name__}.{module.name}")


def available() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str) -> MethodEntry:
    if name not in _REGISTRY:
        raise KeyError(f"unknown method {name!r}; choose one of: {', '.join(available())}")
    return _REGISTRY[name]


def capabilities_of(name: str) -> Capabilities | None:
    """The declared capabilities of method ``name``; None when no method of that name is registered."""
    entry = _REGISTRY.get(name)
    return None if entry is None else entry.capabilities


_TORCH = ("Method", "count_parameters")  # from peftbench.methods.base, imported on first use


def __getattr__(name: str) -> Any:
    if name in _TORCH:
        return getattr(importlib.import_module("peftbench.methods.base"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_discover()

__all__ = ["BINDS", "CAPABILITIES", "MATRIX_TYPES", "Capabilities", "Method", "MethodEntry", "ModelSpec",
           "available", "capabilities_of", "count_parameters", "get", "register"]
