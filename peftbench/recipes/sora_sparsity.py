"""SoRA's sparsifying scheduler (Ding et al., EMNLP 2023, Algorithm 1) as a recipe around ``train.fit``.

``python -m peftbench method=sora recipe=sora_sparsity task=rte method.l1_weight=1e-3`` trains a dense stage
(``trainer.epochs`` at ``recipe.threshold_start``), then one stage of ``recipe.stage_epochs`` per further threshold
up to ``recipe.threshold_end``, and after each stage records the threshold, the nonzero adapter parameters,
memorization (main metric on a fixed seeded training subset, % of the dense stage's) and generalization
(validation main metric, % of the dense stage's). Options: conf/recipe/sora_sparsity.yaml.

Learning rate across stages (``recipe.stage_lr``):
- ``restart`` (default, Algorithm 1 as written: every stage trains): each stage gets fresh schedules (warm-up
  ratio and linear decay over the stage's own steps); optimizer moments carry over.
- ``continue`` (the authors' released code): the dense stage's warm-up/linear-decay schedules keep running, so
  from the first sparsifying stage on every lr is 0. Adam then moves nothing and each stage only shrinks the
  gates by xi per step (their threshold is not scaled by the lr): memorization and generalization then measure
  that shrinkage alone, not re-training.

Known differences from the authors' run (see the final report): they reload the best dense-stage checkpoint
before measuring the reference metrics; here the dense stage's final model is the reference.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from omegaconf import DictConfig
from torch.utils.data import Subset

from peftbench import records
from peftbench.checkpoint import LoopState
from peftbench.config import ConfigError, RunConfig, validate
from peftbench.loggers import build_loggers
from peftbench.methods.sora.sparsity import threshold_schedule
from peftbench.run import execute, run_dir_of
from peftbench.train import Parts, build_schedulers, evaluate_sets, fit, setup, summarize

RECIPE = "sora_sparsity"
MEMORIZATION = "memorization"  # the extra evaluation set: a fixed training subset


def memorization_subset(dataset: Any, size: int, seed: int) -> Subset:
    """The fixed training examples whose metric measures memorization (all of them if there are fewer)."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    return Subset(dataset, order[: min(size, len(dataset))].tolist())


def relative(value: float, reference: float) -> float | None:
    """value as % of the dense stage's; undefined when the reference is 0 (e.g. MCC of a constant predictor)."""
    return None if reference == 0 else 100.0 * value / reference


def memorization_sets(run: RunConfig) -> Any:
    """The fixed training subset, added to ``train.setup``'s evaluation-only sets."""
    return lambda datasets: {MEMORIZATION: memorization_subset(
        datasets["train"], run.recipe.memorization_examples, run.recipe.memorization_seed)}


def measure(accelerator: Accelerator, parts: Parts, validation: dict) -> dict[str, Any]:
    """Stage-end metrics: training subset, validation sets (``fit`` has just evaluated them), test sets, and
    what the gates leave."""
    unwrapped = accelerator.unwrap_model(parts.model)
    return {
        "train_subset": evaluate_sets(accelerator, parts, {"validation": parts.extra_loaders[MEMORIZATION]}),
        "validation": validation,
        "test": evaluate_sets(accelerator, parts, parts.test_loaders) if parts.test_loaders else {},
        "nonzero_parameters": parts.method.nonzero_parameters(unwrapped),
        "ranks": parts.method.ranks(unwrapped),
    }


def sparsify(run: RunConfig, accelerator: Accelerator, parts: Parts, log: Any) -> dict[str, Any]:
    """Algorithm 1: the dense stage, then one stage per further threshold; returns history and stage table.

    One ``LoopState`` runs through all stages, so steps, epochs and the data order continue across them."""
    c, main = run.recipe, run.task.main_metric
    thresholds = threshold_schedule(c.schedule, c.threshold_start, c.threshold_end, c.num_thresholds)
    dense_steps = run.trainer.max_steps or run.trainer.epochs * parts.steps_per_epoch
    stage_steps = c.stage_epochs * parts.steps_per_epoch
    schedulers = build_schedulers(run, parts.optimizers, dense_steps)
    state, stages, reference = LoopState(), [], None
    for stage, xi in enumerate(thresholds):
        parts.method.set_threshold(xi, stage=stage)
        steps = dense_steps if stage == 0 else stage_steps
        if stage > 0 and c.stage_lr == "restart":
            schedulers = build_schedulers(run, parts.optimizers, steps)
        first = len(state.history)
        state = fit(run, accelerator, parts, schedulers, state.step + steps, log, state)
        for entry in state.history[first:]:
            entry["stage"] = stage
        metrics = measure(accelerator, parts, validation=state.history[-1]["eval"])  # fit evaluates its last step
        if stage == 0:  # the dense stage is the 100% reference of both ratios
            reference = (metrics["train_subset"][main], metrics["validation"][main])
        stages.append({"stage": stage, "threshold": xi, "step": state.step, **metrics,
                       "memorization": relative(metrics["train_subset"][main], reference[0]),
                       "generalization": relative(metrics["validation"][main], reference[1])})
        log.log({f"sparsity/{k}": stages[-1][k] for k in ("threshold", "nonzero_parameters", "memorization",
                                                          "generalization") if stages[-1][k] is not None}, state.step)
    return {"history": state.history, "stages": stages, "thresholds": thresholds, "total_steps": state.step,
            "main_metric": main, "stage_lr": c.stage_lr}


def run_sparsity(cfg: DictConfig | RunConfig) -> dict[str, Any]:
    """Run the sparsifying scheduler for one configuration and write its record; returns the record.

    Not resumable from a mid-stage checkpoint: a preempted run is recorded as such and redone from the start."""
    run = cfg if isinstance(cfg, RunConfig) else validate(cfg)
    if run.recipe.name != RECIPE:
        raise ConfigError(f"{RECIPE}: the config's recipe is {run.recipe.name!r}; add recipe={RECIPE}")
    return execute(run, run_dir_of(run, f"-{RECIPE}"), _sparsity_body, recipe=RECIPE)


def _sparsity_body(run: RunConfig, accelerator: Accelerator, run_dir: Path, record: dict, write: Any,
                   resume: Any) -> dict[str, Any]:
    started = time.time()
    parts = setup(run, accelerator, extra_sets=memorization_sets(run))
    log = build_loggers(run.logger if accelerator.is_main_process else type(run.logger)(name="none"), run_dir,
                        run.run_id, run.resolved)
    result = sparsify(run, accelerator, parts, log)
    unwrapped = accelerator.unwrap_model(parts.model)
    final = result["stages"][-1]
    record.update(
        parameters=dict(parts.parameters),
        data={**parts.data_info, "memorization_examples": len(parts.extra_loaders[MEMORIZATION].dataset)},
        history=result["history"],
        total_steps=result["total_steps"],
        sparsity={k: v for k, v in result.items() if k != "history"},
        metrics=summarize(result["history"], parts.family, final["test"]),
        method_records=parts.method.on_train_end(unwrapped),
    )
    record["method_records"]["stages"] = result["stages"]
    record["parameters"]["effective"] = parts.method.effective_parameters(unwrapped)
    record.update(status="completed", finished_at=records.now(), peak_memory_mb=records.peak_memory_mb(),
                  wall_time_s=round(time.time() - started, 2))
    log.finish()
    write()
    return record
