"""Method registry: one folder per method, registered by its lower-case name.

Adding a method touches only ``peftbench/methods/<name>/`` (config.py, layer.py, method.py, and an
``__init__`` that calls :func:`register`) plus ``conf/method/<name>.yaml``.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass

from peftbench.methods.base import MATRIX_TYPES, Method, ModelSpec, count_parameters


@dataclass(frozen=True)
class MethodEntry:
    name: str
    config: type
    method: type[Method]


_REGISTRY: dict[str, MethodEntry] = {}


def register(name: str, *, config: type, method: type[Method]) -> None:
    if name != name.lower() or not name.isidentifier():
        raise ValueError(f"method names are lower-case identifiers, got {name!r}")
    if name in _REGISTRY:
        raise ValueError(f"method {name!r} is registered twice")
    _REGISTRY[name] = MethodEntry(name, config, method)


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


_discover()

__all__ = ["MATRIX_TYPES", "Method", "MethodEntry", "ModelSpec", "available", "count_parameters", "get", "register"]
