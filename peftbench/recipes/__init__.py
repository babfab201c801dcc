"""Recipes: multi-stage procedures built from the functions of ``peftbench.train`` (never a second loop)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

# recipe name (top-level `recipe` key) -> "module:function" taking the composed config, returning the record
RECIPES = {"train": "peftbench.train:train", "sora_sparsity": "peftbench.recipes.sora_sparsity:run_sparsity"}


def get_recipe(name: str) -> Callable[[Any], dict[str, Any]]:
    if name not in RECIPES:
        raise KeyError(f"unknown recipe {name!r}; choose one of: {', '.join(sorted(RECIPES))}")
    module, _, function = RECIPES[name].partition(":")
    return getattr(importlib.import_module(module), function)
