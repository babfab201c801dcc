"""Backbones. :mod:`peftbench.models.roles` (module roles, sizes, the head rule) is torch-free, so the config
checks import it without torch; the builders in :mod:`peftbench.models.backbone` (torch, transformers) load on
first use: ``from peftbench.models import build_model`` works as before.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from peftbench.models.roles import ModelSpec, build_spec

# bitsandbytes warns on import (peft imports it whenever it is installed) that its optional `kernels` package is
# missing, then falls back to its own CPU kernels: harmless, but it would add a line to every command's stderr.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    backbone = importlib.import_module("peftbench.models.backbone")
    try:
        return getattr(backbone, name)
    except AttributeError:
        raise AttributeError(f"module 'peftbench.models' has no attribute {name!r}") from None


__all__ = ["ModelSpec", "build_spec"]
