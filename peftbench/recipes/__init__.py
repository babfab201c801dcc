"""Recipes: multi-stage procedures built from the functions of ``peftbench.train`` (never a second loop).
Each is chosen by the ``recipe`` config group; its options are a dataclass in :mod:`peftbench.recipes.options`."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from peftbench.recipes.options import RECIPE_OPTIONS


def get_recipe(name: str) -> Callable[[Any], dict[str, Any]]:
    if name not in RECIPE_OPTIONS:
        raise KeyError(f"unknown recipe {name!r}; choose one of: {', '.join(sorted(RECIPE_OPTIONS))}")
    module, _, function = RECIPE_OPTIONS[name][0].partition(":")
    return getattr(importlib.import_module(module), function)
