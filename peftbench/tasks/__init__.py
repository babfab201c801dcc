"""Task families: one folder per family (``classification/``, later ``extractive_qa/``, ``seq2seq/``), registered
by name like methods. A task is a YAML file under conf/task naming its family; :mod:`peftbench.tasks.catalog`
reads those without torch. Families are imported on first use, so ``import peftbench.tasks.catalog`` stays light.

Adding a family touches only ``peftbench/tasks/<family>/`` (a :class:`~peftbench.tasks.base.TaskFamily`
subclass and an ``__init__`` that calls :func:`register`) plus the conf/task files of its tasks.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

_FAMILIES: dict[str, type] = {}
_DISCOVERED = False


def register(name: str, family: type) -> None:
    if name != name.lower() or not name.isidentifier():
        raise ValueError(f"family names are lower-case identifiers, got {name!r}")
    if name in _FAMILIES:
        raise ValueError(f"task family {name!r} is registered twice")
    _FAMILIES[name] = family


def _discover() -> None:
    """Import every family package once. Keyed on a flag, not on an empty registry: a family module imported
    directly (a test, a baseline script) registers itself and must not hide the others."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    for module in pkgutil.iter_modules(__path__):
        if module.ispkg:
            importlib.import_module(f"{__name__}.{module.name}")
    _DISCOVERED = True


def available() -> list[str]:
    _discover()
    return sorted(_FAMILIES)


def get(name: str) -> type:
    """The family registered as ``name``. Only its own package (``peftbench/tasks/<name>/``) is imported when that
    registers it: a classification run does not pay for ROUGE's and nltk's imports (~1.7 s)."""
    if name not in _FAMILIES and name in {m.name for m in pkgutil.iter_modules(__path__) if m.ispkg}:
        importlib.import_module(f"{__name__}.{name}")
    if name not in _FAMILIES and name not in available():
        raise KeyError(f"unknown task family {name!r}; choose one of: {', '.join(available())}")
    return _FAMILIES[name]


def family_for(task: Any) -> Any:
    """The family object for a validated task config (``peftbench.config.TaskConfig``)."""
    return get(task.family)(task)
