"""The one training loop: every method runs through ``fit`` below, on Accelerate (1 or N processes).

``train(cfg)`` validates the config, skips a run whose completed record exists, checks data paths and the
budget before any weights load, builds everything (``setup``), resumes from a checkpoint if a previous attempt
left one, runs ``fit`` and writes the run record (``running`` -> ``completed``, ``failed`` or ``preempted``)
atomically.
"""

from __future__ import annotations

import itertools
import math
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, broadcast_object_list, set_seed
from omegaconf import DictConfig
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding, get_linear_schedule_with_warmup

from peftbench import checkpoint, methods, records
from peftbench.budget import fit_budget
from peftbench.checkpoint import LoopState, Preempted, StopFlag
from peftbench.config import RunConfig, validate
from peftbench.data import TASKS, TokenizedDataset, check_sources, load_task
from peftbench.loggers import build_loggers
from peftbench.metrics import compute_metrics
from peftbench.models import build_model, build_tokenizer, model_spec, resolve


@dataclass
class Parts:
    """Everything ``setup`` builds, prepared by Accelerate."""

    model: torch.nn.Module
    method: methods.Method
    train_loader: DataLoader
    eval_loaders: dict[str, DataLoader]  # choose the best step
    test_loaders: dict[str, DataLoader]  # scored once, at the end
    extra_loaders: dict[str, DataLoader]  # recipe-specific sets (e.g. SoRA's memorization subset)
    optimizers: list[torch.optim.Optimizer]
    datasets: dict[str, Any]
    data_info: dict[str, Any]
    parameters: dict[str, int]
    steps_per_epoch: int


def preflight(run: RunConfig) -> None:
    """Everything that can fail without weights: data paths, tokenizer location, the budget."""
    check_sources(run.task.name, run.data_dir)
    reference = run.model.tokenizer or run.model.pretrained
    if reference is not None:
        resolve(reference)
    run.method = fit_budget(run)


def build_data(run: RunConfig, tokenizer: Any) -> tuple[dict[str, TokenizedDataset], dict[str, Any]]:
    splits = load_task(run.task.name, data_dir=run.data_dir, hub_id=run.task.hub_id, protocol=run.task.protocol,
                       split_seed=run.task.split_seed)
    regression = TASKS[run.task.name].is_regression
    cut_train, cut_eval = run.task.max_train_samples, run.task.max_eval_samples

    def tokenized(examples: list, limit: int | None) -> TokenizedDataset:
        return TokenizedDataset(examples[:limit], tokenizer, run.task.max_length, regression)

    datasets = {"train": tokenized(splits.train, cut_train)}
    datasets.update({name: tokenized(rows, cut_eval) for name, rows in splits.eval.items()})
    datasets.update({name: tokenized(rows, cut_eval) for name, rows in splits.test.items()})
    info = {**splits.info, "eval_sets": list(splits.eval), "test_sets": list(splits.test),
            "used": {name: len(dataset) for name, dataset in datasets.items()}}
    return datasets, info


def build_optimizers(run: RunConfig, model: torch.nn.Module, method: methods.Method) -> list[torch.optim.Optimizer]:
    groups = method.param_groups(model, run.trainer.weight_decay)
    return [torch.optim.AdamW(groups, lr=run.trainer.lr), *method.extra_optimizers(model, run.trainer.lr)]


def build_schedulers(run: RunConfig, optimizers: list, total_steps: int) -> list:
    warmup = run.trainer.warmup_steps
    warmup = math.ceil(run.trainer.warmup_ratio * total_steps) if warmup is None else warmup
    return [get_linear_schedule_with_warmup(o, warmup, total_steps) for o in optimizers]


def setup(run: RunConfig, accelerator: Accelerator, extra_sets: Any = None) -> Parts:
    """Data, model with the method applied, loaders and optimizers. ``extra_sets(datasets) -> {name: dataset}``
    adds evaluation-only sets (a recipe's)."""
    set_seed(run.seed)
    tokenizer = build_tokenizer(run.model)
    datasets, info = build_data(run, tokenizer)
    spec = model_spec(run.model)
    model = build_model(run.model, TASKS[run.task.name].num_labels)
    method = methods.get(run.method_name).method(run.method, spec)
    model = method.apply(model)
    parameters = methods.count_parameters(model, spec)
    collate = DataCollatorWithPadding(tokenizer)
    train_loader = DataLoader(datasets["train"], batch_size=run.trainer.batch_size // accelerator.num_processes,
                              shuffle=True, collate_fn=collate, num_workers=run.trainer.num_workers)
    extra = extra_sets(datasets) if extra_sets else {}
    held_out = {**{n: datasets[n] for n in [*info["eval_sets"], *info["test_sets"]]}, **extra}
    batch = run.trainer.eval_batch_size
    loaders = {name: DataLoader(data, batch_size=batch, collate_fn=collate) for name, data in held_out.items()}
    optimizers = build_optimizers(run, model, method)
    model, train_loader, *rest = accelerator.prepare(model, train_loader, *loaders.values(), *optimizers)
    loaders = dict(zip(loaders, rest[:len(loaders)], strict=True))
    return Parts(model=model, method=method, train_loader=train_loader,
                 eval_loaders={n: loaders[n] for n in info["eval_sets"]},
                 test_loaders={n: loaders[n] for n in info["test_sets"]},
                 extra_loaders={n: loaders[n] for n in extra}, optimizers=rest[len(loaders):],
                 datasets=datasets, data_info=info, parameters=parameters,
                 steps_per_epoch=math.ceil(len(train_loader) / run.trainer.gradient_accumulation_steps))


@torch.no_grad()
def evaluate(accelerator: Accelerator, model: torch.nn.Module, loader: DataLoader, task: str) -> dict[str, float]:
    model.eval()
    predictions, labels = [], []
    for batch in loader:
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        scores = logits.squeeze(-1) if TASKS[task].is_regression else logits.argmax(-1)
        scores, targets = accelerator.gather_for_metrics((scores, batch["labels"]))
        predictions.append(scores.float().cpu())
        labels.append(targets.float().cpu())
    model.train()
    predictions, labels = torch.cat(predictions).numpy(), torch.cat(labels).numpy()
    if not TASKS[task].is_regression:
        predictions, labels = predictions.astype(int), labels.astype(int)
    return compute_metrics(TASKS[task].metrics, predictions, labels)


def evaluate_sets(accelerator: Accelerator, model: torch.nn.Module, loaders: dict[str, DataLoader],
                  task: str) -> dict[str, float]:
    """Metrics of every set; validation keeps plain names, other sets are prefixed (``mismatched_accuracy``)."""
    metrics = {}
    for name, loader in loaders.items():
        prefix = "" if name == "validation" else f"{name}_"
        metrics.update({prefix + key: value for key, value in evaluate(accelerator, model, loader, task).items()})
    return metrics


def stop_requested(accelerator: Accelerator, flag: StopFlag) -> bool:
    """Every rank must stop at the same step, so a signal seen by any rank stops all."""
    if accelerator.num_processes == 1:
        return flag.requested
    seen = torch.tensor([float(flag.requested)], device=accelerator.device)
    return bool(accelerator.reduce(seen, "max").item())


def fit(run: RunConfig, accelerator: Accelerator, parts: Parts, schedulers: list, stop_step: int, log: Any,
        state: LoopState, save: Any = None, flag: StopFlag | None = None) -> LoopState:
    """Optimizer steps from ``state.step`` to ``stop_step``; evaluations are appended to ``state.history``.

    ``save(state)`` writes a checkpoint (every ``trainer.checkpoint_every`` steps, at each evaluation, and when a
    stop signal arrives, after which :class:`Preempted` is raised).
    """
    model, method = parts.model, parts.method
    unwrapped = accelerator.unwrap_model(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    eval_every = run.trainer.eval_every or parts.steps_per_epoch
    accumulation = run.trainer.gradient_accumulation_steps
    progress = tqdm(total=stop_step, initial=state.step, disable=not accelerator.is_main_process, desc=run.run_id)
    method.on_train_start(unwrapped, stop_step)
    model.train()
    while state.step < stop_step:
        parts.train_loader.set_epoch(state.epoch)
        batches = resume_batches(accelerator, parts.train_loader, state.batches_in_epoch * accumulation, state)
        for batch in batches:
            with accelerator.accumulate(model):
                task_loss = model(**batch).loss
                extra = method.extra_losses(unwrapped)
                loss = task_loss + sum(extra.values())
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite loss {loss.item()} at optimizer step {state.step + 1}")
                accelerator.backward(loss)
                if not accelerator.sync_gradients:
                    continue  # a micro-batch of gradient accumulation: no optimizer step yet
                if run.trainer.max_grad_norm is not None:
                    accelerator.clip_grad_norm_(trainable, run.trainer.max_grad_norm)
                for optimizer in parts.optimizers:
                    optimizer.step()
                state.step += 1
                method.after_optimizer_step(unwrapped, state.step)  # before zero_grad: AdaLoRA reads gradients
                for scheduler in schedulers:
                    scheduler.step()
                for optimizer in parts.optimizers:
                    optimizer.zero_grad(set_to_none=True)
            state.batches_in_epoch += 1
            state.running_loss.append(accelerator.reduce(task_loss.detach(), "mean").item())
            progress.update(1)
            if state.step % run.trainer.log_every == 0:
                log.log({"train/loss": state.running_loss[-1], "train/lr": schedulers[0].get_last_lr()[0],
                         **{f"train/{k}": v.item() for k, v in extra.items()}}, state.step)
            evaluated = state.step % eval_every == 0 or state.step == stop_step
            if evaluated:
                evaluate_step(run, accelerator, parts, state, log)
            stopping = flag is not None and stop_requested(accelerator, flag)
            every = run.trainer.checkpoint_every
            if save is not None and (stopping or evaluated or (every and state.step % every == 0)):
                save(state)
            if stopping:
                raise Preempted(f"stopped by {flag.signal_name or 'signal'} after step {state.step}", flag)
            if state.step >= stop_step:
                break
        else:
            state.epoch, state.batches_in_epoch = state.epoch + 1, 0
    progress.close()
    return state


def resume_batches(accelerator: Accelerator, loader: DataLoader, skip: int, state: LoopState) -> Any:
    """The epoch's batches after the first ``skip``. A resumed run restores its RNG only once the first batch
    has been drawn: starting a data iterator draws from the global RNG, which the checkpointed run had done
    before it saved its RNG state."""
    batches = iter(accelerator.skip_first_batches(loader, skip))
    if state.rng is None:
        return batches
    first = next(batches, None)
    checkpoint.restore_rng(state.rng)
    state.rng = None
    return itertools.chain([] if first is None else [first], batches)


def evaluate_step(run: RunConfig, accelerator: Accelerator, parts: Parts, state: LoopState, log: Any) -> None:
    unwrapped = accelerator.unwrap_model(parts.model)
    entry = {"step": state.step, "epoch": round(state.step / parts.steps_per_epoch, 4),
             "train_loss": sum(state.running_loss) / max(len(state.running_loss), 1),
             "eval": evaluate_sets(accelerator, parts.model, parts.eval_loaders, run.task.name),
             "method": parts.method.on_evaluate(unwrapped, state.step)}
    state.history.append(entry)
    state.running_loss = []
    log.log({f"eval/{k}": v for k, v in entry["eval"].items()}, state.step)


def summarize(history: list[dict[str, Any]], main_metric: str, test: dict[str, float]) -> dict[str, Any]:
    best = max(history, key=lambda entry: entry["eval"][main_metric])
    return {"main_metric": main_metric, "final": {**history[-1]["eval"], **test}, "best": best["eval"],
            "best_step": best["step"]}


def make_accelerator(run: RunConfig) -> Accelerator:
    return Accelerator(cpu=run.trainer.cpu, mixed_precision=run.trainer.mixed_precision,
                       gradient_accumulation_steps=run.trainer.gradient_accumulation_steps,
                       dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True))


def train(cfg: DictConfig | RunConfig) -> dict[str, Any]:
    """Run one configuration; returns its record (the existing one if it already completed)."""
    run = cfg if isinstance(cfg, RunConfig) else validate(cfg)
    return execute(run, Path(run.paths.results_dir) / run.experiment_name / run.run_id, run_training)


def execute(run: RunConfig, run_dir: Path, body: Any, **record_fields: Any) -> dict[str, Any]:
    """The record's life around ``body(run, accelerator, run_dir, record, write, resume) -> record``: skip a
    completed run, check inputs before weights load, resume from a checkpoint, mark failures and preemptions."""
    if records.is_completed(run_dir) and not run.force:
        print(f"skipping {run.run_id}: completed record at {run_dir / records.RECORD_NAME} (force=true re-runs it)")
        return records.read_record(run_dir)
    preflight(run)
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


def run_training(run: RunConfig, accelerator: Accelerator, run_dir: Path, record: dict, write: Any,
                 resume: dict[str, Any] | None) -> dict:
    started = time.time()
    parts = setup(run, accelerator)
    record["parameters"], record["data"] = dict(parts.parameters), parts.data_info
    total_steps = run.trainer.max_steps or run.trainer.epochs * parts.steps_per_epoch
    schedulers = build_schedulers(run, parts.optimizers, total_steps)
    unwrapped = accelerator.unwrap_model(parts.model)
    state = LoopState()
    if resume is not None:
        state = checkpoint.restore(resume, unwrapped, parts.method, parts.optimizers, schedulers)
        record.setdefault("resumed_at_steps", []).append(state.step)
    log = build_loggers(run.logger if accelerator.is_main_process else type(run.logger)(name="none"), run_dir,
                        run.run_id, run.resolved, resume_step=state.step if resume else None)
    elapsed = record.get("wall_time_s") or 0.0

    def save(current: LoopState) -> None:
        if accelerator.is_main_process:
            record["wall_time_s"] = round(elapsed + time.time() - started, 2)
            checkpoint.save(run_dir / checkpoint.CHECKPOINT_NAME, unwrapped, parts.method, parts.optimizers,
                            schedulers, current, extra={"record": record})
        accelerator.wait_for_everyone()

    flag = StopFlag()
    flag.install()
    try:
        state = fit(run, accelerator, parts, schedulers, total_steps, log, state, save=save, flag=flag)
    finally:
        flag.uninstall()
    test = evaluate_sets(accelerator, parts.model, parts.test_loaders, run.task.name) if parts.test_loaders else {}
    record["method_records"] = parts.method.on_train_end(unwrapped)
    record["parameters"]["effective"] = parts.method.effective_parameters(unwrapped)
    record.update(status="completed", history=state.history, total_steps=total_steps,
                  metrics=summarize(state.history, TASKS[run.task.name].main_metric, test),
                  finished_at=records.now(), wall_time_s=round(elapsed + time.time() - started, 2),
                  peak_memory_mb=records.peak_memory_mb())
    log.finish()
    write()
    if accelerator.is_main_process:
        (run_dir / checkpoint.CHECKPOINT_NAME).unlink(missing_ok=True)
    return record


def new_record(run: RunConfig, world_size: int) -> dict[str, Any]:
    return {"schema_version": records.SCHEMA_VERSION, "run_id": run.run_id, "experiment": run.experiment_name,
            "status": "running", "failure": None, "method": run.method_name, "model": run.model.name,
            "task": run.task.name, "budget": run.budget.name, "seed": run.seed, "config": run.resolved,
            "method_config": asdict(run.method), "started_at": records.now(), "finished_at": None,
            "wall_time_s": None, "world_size": world_size, "versions": records.package_versions(),
            "git": records.git_state()}
