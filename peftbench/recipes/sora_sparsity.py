"""SoRA's sparsifying scheduler (Ding et al., EMNLP 2023, Algorithm 1) as a recipe around ``train.fit``.

``python -m peftbench.recipes.sora_sparsity method=sora method.schedule=linear method.threshold=0
method.threshold_end=7e-4 method.l1_weight=1e-3 task=rte`` trains a dense stage (``trainer.epochs`` at the
first threshold), then one stage of ``method.stage_epochs`` per further threshold, and after each stage
records the threshold, the nonzero adapter parameters, memorization (main metric on a fixed seeded training
subset, % of the dense stage's) and generalization (validation main metric, % of the dense stage's).

Learning rate across stages (``method.stage_lr``):
- ``continue`` (default, the authors' code): the dense stage's warm-up/linear-decay schedules keep running, so
  from the first sparsifying stage on every lr is 0. Adam then moves nothing and each stage only shrinks the
  gates by xi per step (their threshold is not scaled by the lr), which is what the authors' Figure 3 measures.
- ``restart``: each stage gets fresh schedules (warm-up ratio and linear decay over the stage's own steps);
  optimizer moments carry over. This is the reading of Algorithm 1 in which every stage re-trains.

Known differences from the authors' run (see the final report): they reload the best dense-stage checkpoint
before measuring the reference metrics; here the dense stage's final model is the reference.
"""

from __future__ import annotations

import math
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Subset
from transformers import DataCollatorWithPadding

from peftbench import methods, records
from peftbench.config import ConfigError, RunConfig, validate
from peftbench.data import TASKS
from peftbench.loggers import build_loggers
from peftbench.methods.sora.sparsity import threshold_schedule
from peftbench.models import build_model, build_tokenizer, model_spec
from peftbench.train import (
    build_data,
    build_optimizers,
    build_schedulers,
    evaluate,
    evaluate_sets,
    fit,
    new_record,
    preflight,
    summarize,
)

RECIPE = "sora_sparsity"


def memorization_subset(dataset: Any, size: int, seed: int) -> Subset:
    """The fixed training examples whose metric measures memorization (all of them if there are fewer)."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    return Subset(dataset, order[: min(size, len(dataset))].tolist())


def relative(value: float, reference: float) -> float | None:
    """value as % of the dense stage's; undefined when the reference is 0 (e.g. MCC of a constant predictor)."""
    return None if reference == 0 else 100.0 * value / reference


def setup(run: RunConfig, accelerator: Accelerator) -> dict[str, Any]:
    """What ``train.run_training`` builds, plus the memorization loader; everything prepared by Accelerate."""
    set_seed(run.seed)
    tokenizer = build_tokenizer(run.model)
    datasets, info = build_data(run, tokenizer)
    spec = model_spec(run.model)
    model = build_model(run.model, TASKS[run.task.name].num_labels)
    method = methods.get(run.method_name).method(run.method, spec)
    model = method.apply(model)
    collate = DataCollatorWithPadding(tokenizer)
    train = DataLoader(
        datasets["train"],
        batch_size=run.trainer.batch_size // accelerator.num_processes,
        shuffle=True,
        collate_fn=collate,
        num_workers=run.trainer.num_workers,
    )
    subset = memorization_subset(datasets["train"], run.method.memorization_examples, run.method.memorization_seed)
    names = [*info["eval_sets"], *info["test_sets"]]
    loaders = [DataLoader(datasets[n], batch_size=run.trainer.eval_batch_size, collate_fn=collate) for n in names]
    loaders.append(DataLoader(subset, batch_size=run.trainer.eval_batch_size, collate_fn=collate))
    optimizers = build_optimizers(run, model, method)
    parameters = methods.count_parameters(model, spec)
    model, train, *rest = accelerator.prepare(model, train, *loaders, *optimizers)
    eval_loaders = dict(zip(names, rest[: len(names)], strict=True))
    return {
        "model": model,
        "method": method,
        "train": train,
        "memorization": rest[len(names)],
        "validation": {n: eval_loaders[n] for n in info["eval_sets"]},
        "test": {n: eval_loaders[n] for n in info["test_sets"]},
        "optimizers": rest[len(names) + 1 :],
        "info": {**info, "memorization_examples": len(subset)},
        "parameters": parameters,
    }


def measure(accelerator: Accelerator, parts: dict[str, Any], task: str, validation: dict) -> dict[str, Any]:
    """Stage-end metrics: training subset, validation sets (``fit`` has just evaluated them), test sets, and
    what the gates leave."""
    model, unwrapped = parts["model"], accelerator.unwrap_model(parts["model"])
    return {
        "train_subset": evaluate(accelerator, model, parts["memorization"], task),
        "validation": validation,
        "test": evaluate_sets(accelerator, model, parts["test"], task) if parts["test"] else {},
        "nonzero_parameters": parts["method"].nonzero_parameters(unwrapped),
        "ranks": parts["method"].ranks(unwrapped),
    }


def run_stage(
    run: RunConfig,
    accelerator: Accelerator,
    parts: dict[str, Any],
    schedulers: list,
    steps: int,
    offset: int,
    stage: int,
    log: Any,
) -> list[dict[str, Any]]:
    """One call of the shared loop; its history gets global steps and the stage number."""
    method = parts["method"]
    seen = len(method.rank_history)
    history = fit(
        run,
        accelerator,
        parts["model"],
        method,
        parts["train"],
        parts["validation"],
        parts["optimizers"],
        schedulers,
        steps,
        log,
    )
    for entry in [*history, *method.rank_history[seen:]]:
        entry["step"] += offset  # fit counts from 0 in every call
    for entry in history:
        entry["stage"] = stage
    return history


def sparsify(run: RunConfig, accelerator: Accelerator, parts: dict[str, Any], log: Any) -> dict[str, Any]:
    """Algorithm 1: the dense stage, then one stage per further threshold; returns history and stage table."""
    c, task = run.method, run.task.name
    main = TASKS[task].main_metric
    thresholds = threshold_schedule(c.schedule, c.threshold, c.threshold_end, c.num_thresholds)
    steps_per_epoch = math.ceil(len(parts["train"]) / run.trainer.gradient_accumulation_steps)
    dense_steps = run.trainer.max_steps or run.trainer.epochs * steps_per_epoch
    stage_steps = c.stage_epochs * steps_per_epoch
    schedulers = build_schedulers(run, parts["optimizers"], dense_steps)
    history, stages, offset, reference = [], [], 0, None
    for stage, xi in enumerate(thresholds):
        parts["method"].set_threshold(xi, stage=stage)
        steps = dense_steps if stage == 0 else stage_steps
        if stage > 0 and c.stage_lr == "restart":
            schedulers = build_schedulers(run, parts["optimizers"], steps)
        history += run_stage(run, accelerator, parts, schedulers, steps, offset, stage, log)
        offset += steps
        metrics = measure(accelerator, parts, task, validation=history[-1]["eval"])  # fit evaluates its last step
        if stage == 0:  # the dense stage is the 100% reference of both ratios
            reference = (metrics["train_subset"][main], metrics["validation"][main])
        stages.append(
            {
                "stage": stage,
                "threshold": xi,
                "step": offset,
                **metrics,
                "memorization": relative(metrics["train_subset"][main], reference[0]),
                "generalization": relative(metrics["validation"][main], reference[1]),
            }
        )
        log.log(
            {
                f"sparsity/{k}": stages[-1][k]
                for k in ("threshold", "nonzero_parameters", "memorization", "generalization")
                if stages[-1][k] is not None
            },
            offset,
        )
    return {"history": history, "stages": stages, "thresholds": thresholds, "total_steps": offset, "main_metric": main}


def run_sparsity(cfg: DictConfig | RunConfig) -> dict[str, Any]:
    """Run the sparsifying scheduler for one configuration and write its record; returns the record."""
    run = cfg if isinstance(cfg, RunConfig) else validate(cfg)
    if run.method_name != "sora" or run.method.schedule is None:
        raise ConfigError(
            f"{RECIPE}: needs method=sora with method.schedule set (linear, log_linear, "
            f"exp_linear), got method={run.method_name}"
        )
    run_dir = Path(run.paths.results_dir) / run.experiment_name / f"{run.run_id}-{RECIPE}"
    if records.is_completed(run_dir) and not run.force:
        print(f"skipping {run.run_id}: completed record at {run_dir / records.RECORD_NAME} (force=true re-runs it)")
        return records.read_record(run_dir)
    preflight(run)
    accelerator = Accelerator(
        cpu=run.trainer.cpu,
        mixed_precision=run.trainer.mixed_precision,
        gradient_accumulation_steps=run.trainer.gradient_accumulation_steps,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    record = {**new_record(run, accelerator.num_processes), "recipe": RECIPE}
    write = (
        (lambda: records.write_json_atomic(run_dir / records.RECORD_NAME, record))
        if accelerator.is_main_process
        else (lambda: None)
    )
    write()
    try:
        parts = setup(run, accelerator)
        log = (
            build_loggers(run.logger, run_dir, run.run_id, run.resolved)
            if accelerator.is_main_process
            else build_loggers(type(run.logger)(name="none"), run_dir, run.run_id, {})
        )
        result = sparsify(run, accelerator, parts, log)
        unwrapped = accelerator.unwrap_model(parts["model"])
        final = result["stages"][-1]
        record.update(
            parameters=parts["parameters"],
            data=parts["info"],
            history=result["history"],
            total_steps=result["total_steps"],
            sparsity={k: v for k, v in result.items() if k != "history"},
            metrics=summarize(result["history"], result["main_metric"], final["test"]),
            method_records=parts["method"].on_train_end(unwrapped),
        )
        record["parameters"]["effective"] = parts["method"].effective_parameters(unwrapped)
        record.update(
            status="completed",
            finished_at=records.now(),
            peak_memory_mb=records.peak_memory_mb(),
            wall_time_s=round(time.time() - record["started_unix"], 2),
        )
        log.finish()
        write()
        return record
    except BaseException as error:
        record.update(
            status="failed",
            finished_at=records.now(),
            wall_time_s=time.time() - record["started_unix"],
            failure={
                "type": type(error).__name__,
                "message": str(error)[:2000],
                "traceback": traceback.format_exc()[-8000:],
            },
        )
        write()
        raise


def main(argv: list[str] | None = None) -> None:
    from peftbench.cli import check_options, compose_config, normalise

    overrides = normalise(sys.argv[1:] if argv is None else argv)
    check_options(overrides)
    record = run_sparsity(compose_config(overrides))
    for stage in record["sparsity"]["stages"]:
        print(
            f"stage {stage['stage']}: xi={stage['threshold']:.3g} nonzero={stage['nonzero_parameters']:,} "
            f"memorization={stage['memorization']} generalization={stage['generalization']}"
        )


if __name__ == "__main__":
    main()
