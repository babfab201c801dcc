"""What the whole-run contenders share: the quickstart's config, data and LoRA model, taken from peftbench itself.

``benchmarks/whole_trainer.py`` (HF Trainer + peft) and ``benchmarks/whole_bare.py`` (a bare torch + peft loop)
compose the same config as ``python -m peftbench`` with the same overrides, and read everything from it rather
than retyping it: the split and the tokenisation (``peftbench.train.build_data``: seeded 80/10/10 split, first
``task.max_train_samples`` examples, ``task.max_length`` truncation, dynamic padding by
``DataCollatorWithPadding``), the backbone (``peftbench.models.build_model``), the LoRA matrices
(``ModelSpec.target_regex`` of ``method.target_types``, r, alpha, dropout), the trainable head
(``ModelSpec.is_head``) and the trainer hyperparameters (batch sizes, epochs, lr, weight decay on ``dim >= 2``
only, warm-up ratio, clipping, seed).

Each contender prints one line ``RESULT {json}`` with ``val_accuracy`` (the last epoch's) and ``test_accuracy``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from peft import LoraConfig, inject_adapter_in_model  # noqa: E402

from peftbench import tasks  # noqa: E402
from peftbench.config import RunConfig, validate  # noqa: E402
from peftbench.models import build_model, build_tokenizer, model_spec  # noqa: E402
from peftbench.train import build_data  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "conf"
RESULT = "RESULT "


def compose_run(overrides: list[str]) -> RunConfig:
    """The validated config ``python -m peftbench <overrides>`` would run (LoRA is required)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        run = validate(compose("config", overrides=overrides))
    if run.method_name != "lora":
        raise SystemExit(f"the whole-run contenders implement LoRA only, got method={run.method_name}")
    return run


def device_of(run: RunConfig) -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() and not run.trainer.cpu else "cpu")


def load_data(run: RunConfig) -> tuple[Any, dict[str, Any], Any]:
    """Tokenizer, ``{"train", "validation", "test"}`` datasets and the family, exactly as ``peftbench.train.setup``
    builds them (same split, same cut, same truncation)."""
    family = tasks.family_for(run.task)
    tokenizer = build_tokenizer(run.model)
    datasets, _ = build_data(run, family, tokenizer)
    return tokenizer, datasets, family


def lora_model(run: RunConfig, family: Any) -> torch.nn.Module:
    """The backbone with peft's LoRA on ``method.target_types`` and the head trainable, as peftbench's ``lora``
    method builds it (``peftbench/methods/lora/method.py``: the same LoraConfig), with PEFT's own ``lora.Linear``
    forward, as a Trainer or bare-loop user runs it (peftbench's fused forward is part of its time to result)."""
    spec, lora = model_spec(run.model, family.name), run.method
    model = build_model(run.model, family.num_labels(), model_class=family.model_class)
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, bias="none",
                        target_modules=spec.target_regex(tuple(lora.target_types)))
    model = inject_adapter_in_model(config, model)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_("lora_" in name or spec.is_head(name))
    return model


def decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """peftbench's rule (``Method.param_groups``): decay on trainable parameters with ``dim >= 2`` only."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in trainable if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in trainable if p.dim() < 2], "weight_decay": 0.0}]


def trainable_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def report(**values: Any) -> None:
    """The ``RESULT`` line, with the peak CUDA memory allocated when there is a GPU."""
    if torch.cuda.is_available():
        values["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(RESULT + json.dumps(values), flush=True)
