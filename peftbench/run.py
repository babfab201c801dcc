"""A run's life around the loop: skip a completed run, check inputs before weights load, hold the run's lock,
resume from a checkpoint, and record the outcome (``running`` -> ``completed``, ``failed`` or ``preempted``)
atomically in ``results/<experiment>/<run-id>/run.json``. Recipes hand their body to :func:`execute`."""

from __future__ import annotations

import dataclasses
import math
import os
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, broadcast_object_list

from peftbench import checkpoint, heap, records, tasks
from peftbench.budget import fit_budget
from peftbench.checkpoint import Preempted
from peftbench.config import ConfigError, RunConfig
from peftbench.models import model_spec, resolve


def preflight(run: RunConfig) -> RunConfig:
    """Everything that can fail without weights: data sources (every row of local files), the tokenizer's
    location, the budget, and the method's schedule against the run's total optimizer steps. Returns the run with
    the method config that meets the budget; a run already checked is returned as it is.

    A method config may define ``check_total_steps(total_steps)`` raising ``ValueError`` (AdaLoRA: t_i + t_f < T).
    T comes from the config and the number of training examples; for a hub dataset that number is unknown
    without the network, so unless ``trainer.max_steps`` fixes T the check waits for ``on_train_start``."""
    if run.checked:
        return run
    family = tasks.family_for(run.task)
    family.check_sources(run.data_dir)
    try:  # the backbone has module roles and a head rule for the family (BERT has no seq2seq LM)
        model_spec(run.model, family.name)
    except ValueError as error:
        raise ConfigError(f"model={run.model.name} task={run.task.name}: {error}") from None
    size = family.train_size(run.data_dir)
    reference = run.model.tokenizer or run.model.pretrained
    if reference is not None:
        resolve(reference)
    for key in ("results_dir", "report_dir"):
        folder = Path(getattr(run.paths, key))
        existing = next(p for p in (folder, *folder.parents) if p.exists())
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(f"paths.{key}={folder}: {existing} is not writable; give a folder you can write")
    method = fit_budget(run)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if run.trainer.batch_size < world:
        raise ConfigError(f"trainer.batch_size={run.trainer.batch_size} is the global batch, split over {world} "
                          f"processes; use trainer.batch_size={world} or more")
    check = getattr(method, "check_total_steps", None)
    steps = total_steps(run, size, world)
    if check is not None and steps is not None:
        try:
            check(steps[0])
        except ValueError as error:
            raise ConfigError(f"{str(error).splitlines()[0]} (T = {steps[1]})") from None
    return dataclasses.replace(run, method=method, checked=True)


def total_steps(run: RunConfig, train_size: int | None, world_size: int = 1) -> tuple[int, str] | None:
    """T, the optimizer steps of the run (of the dense stage for the sparsity recipe), as ``train.py`` computes it
    from its loader, and how it came about; None when it depends on a training set of unknown size."""
    trainer = run.trainer
    if trainer.max_steps:
        return trainer.max_steps, f"trainer.max_steps={trainer.max_steps}"
    if train_size is None:
        return None
    used = min(train_size, run.task.max_train_samples or train_size)
    per_process = trainer.batch_size // world_size
    batches = math.ceil(math.ceil(used / per_process) / world_size)  # Accelerate: every process, even batches
    per_epoch = math.ceil(batches / trainer.gradient_accumulation_steps)
    accumulation = f" x {trainer.gradient_accumulation_steps} accumulated" * (trainer.gradient_accumulation_steps > 1)
    return trainer.epochs * per_epoch, (f"trainer.epochs={trainer.epochs} x {per_epoch} steps of "
                                        f"trainer.batch_size={trainer.batch_size}{accumulation} over {used} "
                                        "training examples")


def run_dir_of(run: RunConfig, suffix: str = "") -> Path:
    return Path(run.paths.results_dir) / run.experiment_name / f"{run.run_id}{suffix}"


def execute(run: RunConfig, run_dir: Path, body: Any, **record_fields: Any) -> dict[str, Any]:
    """The record's life around ``body(run, accelerator, run_dir, record, write, resume) -> record``."""
    if records.is_completed(run_dir) and not run.force:
        print(f"skipping {run.run_id}: completed record at {run_dir / records.RECORD_NAME} (force=true re-runs it)")
        return records.read_record(run_dir)
    run = preflight(run)
    heap.fix_mmap_threshold(run.trainer.malloc_mmap_threshold_mb)
    accelerator = make_accelerator(run)
    with records.run_lock(run_dir, held=accelerator.is_main_process):
        # Another attempt at the same run may have finished while this one waited for the lock.
        skip = [records.is_completed(run_dir) and not run.force]
        if accelerator.num_processes > 1:
            broadcast_object_list(skip)
        if skip[0]:
            print(f"skipping {run.run_id}: another attempt completed it while this one waited")
            return records.read_record(run_dir)
        return attempt(run, accelerator, run_dir, body, record_fields)


def make_accelerator(run: RunConfig) -> Accelerator:
    return Accelerator(cpu=run.trainer.cpu, mixed_precision=run.trainer.mixed_precision,
                       gradient_accumulation_steps=run.trainer.gradient_accumulation_steps,
                       dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True))


def attempt(run: RunConfig, accelerator: Accelerator, run_dir: Path, body: Any,
            record_fields: dict[str, Any]) -> dict[str, Any]:
    """One attempt at a run, holding its lock: resume or start, record the outcome."""
    checkpoint_path = run_dir / checkpoint.CHECKPOINT_NAME
    if run.force and accelerator.is_main_process:
        checkpoint_path.unlink(missing_ok=True)
    accelerator.wait_for_everyone()
    resume = checkpoint.load(checkpoint_path)
    record = resume["extra"]["record"] if resume else {**new_record(run, accelerator.num_processes), **record_fields}
    record.update(status="running", failure=None)
    write = (lambda: records.write_json_atomic(run_dir / records.RECORD_NAME, record)) \
        if accelerator.is_main_process else (lambda: None)
    write()
    started, previous = time.time(), record.get("wall_time_s") or 0.0
    try:
        return body(run, accelerator, run_dir, record, write, resume)
    except BaseException as error:
        preempted = isinstance(error, Preempted)
        record.update(status="preempted" if preempted else "failed", finished_at=records.now(),
                      wall_time_s=round(previous + time.time() - started, 2),
                      failure={"type": type(error).__name__, "message": str(error)[:2000],
                               "traceback": traceback.format_exc()[-8000:]})
        write()
        if preempted and error.flag is not None:
            error.flag.hand_over()  # e.g. submitit's handler requeues the job; it may exit here
        raise


def new_record(run: RunConfig, world_size: int) -> dict[str, Any]:
    return {"schema_version": records.SCHEMA_VERSION, "run_id": run.run_id, "experiment": run.experiment_name,
            "status": "running", "failure": None, "method": run.method_name, "model": run.model.name,
            "task": run.task.name, "family": run.task.family, "budget": run.budget.name, "recipe": run.recipe.name,
            "seed": run.seed, "config": run.resolved, "method_config": asdict(run.method),
            "started_at": records.now(), "finished_at": None, "wall_time_s": None, "world_size": world_size,
            "versions": records.package_versions(), "git": records.git_state()}
