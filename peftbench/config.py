"""Structured configs: the schema every composed config must satisfy before a model or dataset is touched.

Hydra composes YAML; :func:`validate` merges it into these dataclasses with OmegaConf, which rejects unknown
keys and wrong types, then runs each dataclass's ``__post_init__`` checks. Every failure becomes one
:class:`ConfigError` line that names the key and says what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib.util
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from peftbench import methods
from peftbench.models.roles import MATRIX_TYPES
from peftbench.recipes.options import RECIPE_OPTIONS
from peftbench.tasks import catalog

QUANTIZATIONS = ("none", "nf4")
# Keys of the task node that define the task rather than choose how to run it: left out of the run id, so that
# describing a task more fully never renames (and re-runs) finished runs.
TASK_DEFINITION = ("family", "metrics", "main_metric", "source", "label", "columns")


class ConfigError(ValueError):
    """A config that cannot run; the message is one line naming the key and the allowed values."""


@dataclass
class ModelConfig:
    name: str
    pretrained: str | None
    tokenizer: str | None
    architecture: dict[str, Any] | None
    targets: dict[str, str] | None = None  # matrix type -> regex; null = the roles of the model_type
    head: list[str] | None = None  # head parameter patterns; null = the stated rule (peftbench/models/roles.py)
    quantization: str = "none"  # backbone precision: none | nf4 (4-bit NormalFloat, double quantisation)

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("model.name: '' is empty; name the model (it is part of the run id)")
        unknown = sorted(set(self.targets or {}) - set(MATRIX_TYPES))
        if unknown:
            raise ValueError(f"model.targets: unknown matrix types {unknown}; allowed {list(MATRIX_TYPES)}")
        for kind, pattern in (self.targets or {}).items():
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"model.targets.{kind}: {pattern!r} is not a regular expression ({error})") from None
        for position, pattern in enumerate(self.head or []):
            if not pattern:
                raise ValueError(f"model.head[{position}]: '' matches every parameter; give a name fragment")
        if self.pretrained is None and not self.architecture:
            raise ValueError("model: a random-init model (pretrained: null) needs `architecture`")
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"model.quantization: {self.quantization!r}; allowed {list(QUANTIZATIONS)}")
        if self.quantization != "none" and self.pretrained is None:
            raise ValueError("model.quantization: quantises pretrained weights; a random-init model has none")
        if self.quantization != "none" and importlib.util.find_spec("bitsandbytes") is None:
            raise ValueError(f"model.quantization={self.quantization} needs bitsandbytes, which is not installed "
                             "(pip install 'bitsandbytes>=0.50')")


@dataclass
class TaskConfig:
    """A task is data: its family, how it is scored, where its examples are (``source``, read by the family),
    and the run's knobs (lengths, sample caps, evaluation protocol)."""

    name: str
    family: str
    metrics: list[str]
    main_metric: str
    source: dict[str, Any]
    label: str | None = None
    columns: dict[str, str] | None = None
    hub_id: str | None = None
    max_length: int = 128
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    protocol: str = "adalora"
    split_seed: int = 42
    # Family-specific run knobs, checked by the family's check_config (QA: doc_stride, n_best, ...; seq2seq:
    # max_target_length, num_beams, ...): one free node, so a family adds knobs without touching this schema.
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in catalog.tasks():
            raise ValueError(f"task.name: unknown task {self.name!r}; allowed {sorted(catalog.tasks())}")
        if self.protocol not in ("adalora", "sora"):
            raise ValueError(f"task.protocol: {self.protocol!r}; allowed ['adalora', 'sora']")
        if self.main_metric not in self.metrics:
            raise ValueError(f"task.main_metric: {self.main_metric!r} is not among task.metrics {self.metrics}")
        for key in ("max_length", "max_train_samples", "max_eval_samples"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ValueError(f"task.{key} must be a positive integer or null, got {value}")
        if self.split_seed < 0:
            raise ValueError(f"task.split_seed must be a non-negative integer, got {self.split_seed}")


@dataclass
class BudgetConfig:
    """A paper budget group (a knob value per method) and/or a cap; ``peftbench/budget.py`` applies it.

    ``rank`` sets every method whose ``knob_kind`` is ``"rank"``; ``knobs`` sets a method's knob by method name
    (names of methods not registered yet are kept as data, so the paper's adapter sizes can be written down
    before those methods exist). A cap (``max_params`` or ``max_percent`` of the frozen backbone) binds the count
    ``binds`` names, or each method's declared ``budget_binds`` when null; a knob the budget leaves unset takes
    the largest value under the cap. ``reference``: the papers' figures for this budget (printed by ``plan``).
    """

    name: str
    rank: int | None = None
    knobs: dict[str, int] = field(default_factory=dict)
    max_params: int | None = None
    max_percent: float | None = None
    binds: str | None = None
    max_trainable_params: int | None = None  # deprecated: max_params with binds=trainable
    reference: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        from peftbench.methods import BINDS

        if self.rank is not None and self.rank < 1:
            raise ValueError(f"budget.rank must be a positive rank or null, got {self.rank}")
        for method, value in self.knobs.items():
            if not method.isidentifier() or value is None or value < 1:
                raise ValueError(f"budget.knobs.{method} must be a positive integer under a method name, got {value}")
        if self.max_trainable_params is not None:
            if self.max_params is not None:
                raise ValueError("budget.max_trainable_params is a deprecated alias of budget.max_params; set one")
            self.max_params = self.max_trainable_params
            self.binds = self.binds or "trainable"
        if self.max_params is not None and self.max_params < 1:
            raise ValueError(f"budget.max_params must be positive or null, got {self.max_params}")
        if self.max_percent is not None and not 0 < self.max_percent <= 100:
            raise ValueError(f"budget.max_percent must lie in (0, 100] or be null, got {self.max_percent}")
        if self.max_params is not None and self.max_percent is not None:
            raise ValueError("budget: set max_params or max_percent, not both")
        if self.binds not in (None, *BINDS):
            raise ValueError(f"budget.binds must be null or one of {list(BINDS)}, got {self.binds!r}")


@dataclass
class TrainerConfig:
    epochs: int = 2
    max_steps: int | None = None
    batch_size: int = 32
    eval_batch_size: int = 128
    gradient_accumulation_steps: int = 1
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    warmup_steps: int | None = None
    max_grad_norm: float | None = 1.0
    eval_every: int | None = None
    log_every: int = 20
    checkpoint_every: int | None = None
    cpu: bool = False
    mixed_precision: str = "no"
    num_workers: int = 0
    group_by_length: bool = True  # length-grouped batches; false: the papers' data order (uniform shuffle)
    merge_for_evaluation: bool = True  # evaluate through W0 + ΔW (peftbench/methods/merging.py)
    malloc_mmap_threshold_mb: float | None = None  # peftbench/heap.py; None: glibc's own, growing threshold

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "eval_batch_size", "gradient_accumulation_steps", "log_every")
        for key in positive:
            if getattr(self, key) < 1:
                raise ValueError(f"trainer.{key} must be >= 1, got {getattr(self, key)}")
        for key in ("max_steps", "eval_every", "checkpoint_every"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ValueError(f"trainer.{key} must be >= 1 or null, got {getattr(self, key)}")
        for key in ("warmup_steps",):
            if getattr(self, key) is not None and getattr(self, key) < 0:
                raise ValueError(f"trainer.{key} must be >= 0 or null (warmup_ratio decides), got {getattr(self, key)}")
        threshold = self.malloc_mmap_threshold_mb
        if threshold is not None and not (math.isfinite(threshold) and 0 < threshold <= 32):
            raise ValueError(f"trainer.malloc_mmap_threshold_mb must lie in (0, 32] (glibc's range) or be null, "
                             f"got {threshold}")
        if self.num_workers < 0:
            raise ValueError(f"trainer.num_workers must be >= 0 (0 loads batches in the main process), "
                             f"got {self.num_workers}")
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"trainer.lr must be positive and finite, got {self.lr}")
        if not math.isfinite(self.weight_decay) or self.weight_decay < 0:
            raise ValueError(f"trainer.weight_decay must be a finite number >= 0, got {self.weight_decay}")
        if not 0 <= self.warmup_ratio < 1:  # NaN fails both comparisons
            raise ValueError(f"trainer.warmup_ratio must lie in [0, 1), got {self.warmup_ratio}")
        if self.max_grad_norm is not None and not (math.isfinite(self.max_grad_norm) and self.max_grad_norm > 0):
            # clip_grad_norm_ with a negative bound multiplies every gradient by a negative factor
            raise ValueError(f"trainer.max_grad_norm must be a positive finite number or null (no clipping), "
                             f"got {self.max_grad_norm}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"trainer.mixed_precision: {self.mixed_precision!r}; allowed ['no', 'fp16', 'bf16']")


@dataclass
class LoggerConfig:
    name: str = "csv"
    project: str | None = None
    group: str | None = None
    entity: str | None = None

    def __post_init__(self) -> None:
        if self.name not in ("csv", "wandb", "none"):
            raise ValueError(f"logger.name: {self.name!r}; allowed ['csv', 'none', 'wandb']")
        if self.name == "wandb":
            import importlib.util

            if importlib.util.find_spec("wandb") is None:
                raise ValueError("logger.name: 'wandb' needs the wandb package (pip install wandb); "
                                 "or use logger=csv")
            for key in ("project", "group", "entity"):
                if getattr(self, key) is not None and not str(getattr(self, key)).strip():
                    raise ValueError(f"logger.{key}: '' is empty; give a name or null")


@dataclass
class PathsConfig:
    root_dir: str = "."
    results_dir: str = "results"
    log_dir: str = "logs"
    report_dir: str = "reports"
    cache_dir: str | None = None  # tokenized datasets (peftbench/datacache.py); null = no cache

    def __post_init__(self) -> None:
        """Each folder is a folder or can become one: not a file, nor under a file (whether a run may write there
        is checked by ``peftbench.run.preflight``: ``plan`` and ``report`` write nothing)."""
        from pathlib import Path

        for key in ("root_dir", "results_dir", "log_dir", "report_dir", "cache_dir"):
            value = getattr(self, key)
            if value is None and key == "cache_dir":
                continue
            if not value.strip():
                raise ValueError(f"paths.{key}: '' is empty; give a folder")
            path = Path(value)
            if path.exists() and not path.is_dir():
                raise ValueError(f"paths.{key}={value}: is a file, not a folder; give a folder")
            existing = next((p for p in (path, *path.parents) if p.exists()), None)
            if existing is not None and not existing.is_dir():
                raise ValueError(f"paths.{key}={value}: {existing} is a file, so no folder can be made under it")


@dataclass
class RunConfig:
    """The validated run: every group as a dataclass, the method's own config from the registry."""

    method_name: str
    method: Any
    model: ModelConfig
    task: TaskConfig
    budget: BudgetConfig
    trainer: TrainerConfig
    logger: LoggerConfig
    paths: PathsConfig
    experiment_name: str = "default"
    seed: int = 42
    force: bool = False
    data_dir: str | None = None
    recipe: Any = field(default_factory=lambda: RECIPE_OPTIONS["train"][1]())  # options dataclass, with .name
    resolved: dict[str, Any] = field(default_factory=dict)  # the composed YAML, as recorded in run.json
    checked: bool = False  # preflight passed: data sources exist and the method config meets the budget

    def _budget_semantic(self, budget: dict[str, Any]) -> dict[str, Any]:
        """What of the budget node decides this run: its name, rank and caps, and this method's own knob value;
        paper figures and other methods' knobs are description, and unset keys leave the id as it was."""
        knobs = budget.get("knobs") or {}
        kept = {k: v for k, v in budget.items() if k not in ("reference", "knobs")
                and (k in ("name", "rank", "max_trainable_params") or v is not None)}
        return {**kept, **({"knob": knobs[self.method_name]} if self.method_name in knobs else {})}

    @property
    def run_id(self) -> str:
        """Readable and deterministic: the same config always maps to the same record (skip / resume)."""
        semantic = {k: self.resolved.get(k) for k in ("method", "model", "task", "budget", "trainer", "seed",
                                                       "data_dir")}
        semantic["task"] = {k: v for k, v in (semantic["task"] or {}).items() if k not in TASK_DEFINITION}
        semantic["budget"] = self._budget_semantic(semantic["budget"] or {})
        if self.recipe.name != "train":
            semantic["recipe"] = self.resolved.get("recipe")
        digest = hashlib.sha1(json.dumps(semantic, sort_keys=True, default=str).encode()).hexdigest()[:8]
        return f"{self.task.name}-{self.method_name}-{self.budget.name}-{self.model.name}-seed{self.seed}-{digest}"


TOP_LEVEL = {"method", "model", "task", "budget", "trainer", "logger", "paths", "experiment_name", "seed",
             "force", "data_dir", "recipe"}


def _merge(schema: type, node: Any, key: str) -> Any:
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        return OmegaConf.to_object(merged)
    except ConfigKeyError as error:
        bad = str(error.key) if error.key is not None else "?"
        allowed = [f.name for f in dataclasses.fields(schema)]
        hint = difflib.get_close_matches(bad, allowed, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ConfigError(f"{key}.{bad}: unknown key{suggestion}; allowed keys: {', '.join(allowed)}") from None
    except OmegaConfBaseException as error:
        message = str(error).splitlines()[0]
        raise ConfigError(f"{key}.{error.key}: {message}") from None
    except (TypeError, ValueError) as error:
        message = str(error).splitlines()[0]
        raise ConfigError(message if message.startswith(key) else f"{key}: {message}") from None


EXPERIMENT_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def _top_level(resolved: dict[str, Any]) -> dict[str, Any]:
    """Type checks of the top-level scalars (Hydra hands them over untyped)."""
    seed, force = resolved.get("seed"), resolved.get("force")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed: {seed!r} is not a non-negative integer")
    if not isinstance(force, bool):
        raise ConfigError(f"force: {force!r} is not a boolean; use force=true or force=false")
    data_dir = resolved.get("data_dir")
    if data_dir is not None and (not isinstance(data_dir, str) or not data_dir.strip()):
        raise ConfigError(f"data_dir: {data_dir!r} is not a path; give the folder holding the task's TSV folders")
    name = resolved.get("experiment_name")
    if not isinstance(name, str | int) or isinstance(name, bool) or not EXPERIMENT_NAME.fullmatch(str(name)):
        # it names a folder under results/, reports/ and logs/: no separators, no way out of those folders
        raise ConfigError(f"experiment_name: {name!r} is not a folder name; use letters, digits, '.', '_' and "
                          "'-', not starting with '.'")
    return {"experiment_name": str(name), "seed": seed, "force": force, "data_dir": data_dir}


def _recipe(node: Any) -> Any:
    name = node.get("name") if isinstance(node, dict) else node
    if name not in RECIPE_OPTIONS:
        raise ConfigError(f"recipe: unknown recipe {name!r}; choose one of: {', '.join(sorted(RECIPE_OPTIONS))}")
    return _merge(RECIPE_OPTIONS[name][1], node if isinstance(node, dict) else {"name": name}, "recipe")


def _strict_scalars(run: RunConfig) -> None:
    """What OmegaConf coerces but a run must not guess: a bool option given anything but a boolean (OmegaConf turns
    ``yes``, ``no``, ``1`` and ``2`` into bools; Hydra hands ``trainer.cpu=yes`` over as the string 'yes'), and a
    float option given NaN or infinity (Hydra parses ``nan`` and ``inf``)."""
    groups = {"method": run.method, "model": run.model, "task": run.task, "budget": run.budget,
              "trainer": run.trainer, "logger": run.logger, "paths": run.paths, "recipe": run.recipe}
    for group, value in groups.items():
        raw = run.resolved.get(group)
        if not dataclasses.is_dataclass(value) or not isinstance(raw, dict):
            continue
        for item in dataclasses.fields(value):
            if item.name not in raw:
                continue
            given, kind = raw[item.name], str(item.type).replace(" ", "")
            if kind in ("bool", "bool|None") and not isinstance(given, bool) and given is not None:
                raise ConfigError(f"{group}.{item.name}: {given!r} is not a boolean; use {group}.{item.name}=true "
                                  f"or {group}.{item.name}=false")
            if kind in ("float", "float|None") and isinstance(given, float) and not math.isfinite(given):
                raise ConfigError(f"{group}.{item.name}: {given} is not a finite number")


def _cross_checks(run: RunConfig, declared: methods.Capabilities) -> None:
    """Checks that need more than one group, on the method's declared capabilities (no torch)."""
    _strict_scalars(run)
    if declared.quantization not in (None, run.model.quantization):
        raise ConfigError(f"method={run.method_name} trains on a {declared.quantization} backbone: add "
                          f"model.quantization={declared.quantization} (model {run.model.name} is "
                          f"{run.model.quantization})")
    if run.recipe.name == "sora_sparsity":
        if not declared.sparsifiable:
            raise ConfigError(f"recipe=sora_sparsity: method {run.method_name} cannot be sparsified; use a method "
                              f"that declares `sparsifiable` ({', '.join(_sparsifiable())})")
        if run.recipe.stage_lr == "continue" and getattr(run.method, "threshold_times_lr", False):
            raise ConfigError("recipe.stage_lr=continue leaves the lr at 0 after the dense stage, so a threshold "
                              "scaled by the lr (method.threshold_times_lr=true) would never act; use restart")


def _sparsifiable() -> list[str]:
    return [name for name in methods.available() if methods.get(name).capabilities.sparsifiable]


def _family_checks(run: RunConfig) -> None:
    """The task family's own checks of ``task.options``; last, as importing a family imports torch."""
    from peftbench import tasks

    try:
        tasks.family_for(run.task).check_config()
    except (KeyError, ValueError) as error:
        # str(KeyError) quotes its message; args[0] is the message itself (a ValueError's may end in a repr)
        message = str(error.args[0]) if error.args else str(error)
        raise ConfigError(message.splitlines()[0]) from None


def validate(cfg: DictConfig) -> RunConfig:
    """Check a composed config against the schema; raise :class:`ConfigError` with one clear line."""
    unknown = sorted(set(cfg.keys()) - TOP_LEVEL)
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {unknown}; allowed: {', '.join(sorted(TOP_LEVEL))}")
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as error:
        raise ConfigError(f"{error.full_key}: {str(error).splitlines()[0]}") from None
    top = _top_level(resolved)
    method_node = dict(resolved["method"])
    method_name = method_node.pop("name", None)
    try:
        entry = methods.get(str(method_name))
    except KeyError as error:
        raise ConfigError(f"method: {error.args[0]}") from None
    run = RunConfig(
        method_name=entry.name,
        method=_merge(entry.config, method_node, "method"),
        model=_merge(ModelConfig, resolved["model"], "model"),
        task=_merge(TaskConfig, resolved["task"], "task"),
        budget=_merge(BudgetConfig, resolved["budget"], "budget"),
        trainer=_merge(TrainerConfig, resolved["trainer"], "trainer"),
        logger=_merge(LoggerConfig, resolved["logger"], "logger"),
        paths=_merge(PathsConfig, resolved["paths"], "paths"),
        **top,
        recipe=_recipe(resolved.get("recipe", "train")),
        resolved=resolved,
    )
    _cross_checks(run, entry.capabilities)
    from peftbench.budget import BudgetError, with_budget_knob

    try:
        run.method = with_budget_knob(entry, run.method, run.budget)
    except BudgetError as error:
        raise ConfigError(str(error)) from None
    _family_checks(run)
    return run
