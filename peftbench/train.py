"""The one training loop: every method runs through ``fit`` below, on Accelerate (1 or N processes).

``train(cfg)`` validates the config, skips a run whose completed record exists, checks data paths and the
budget before any weights load, then builds data, model, method and optimizers, runs ``fit`` and writes the
run record (``running`` -> ``completed`` or ``failed``) atomically.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from omegaconf import DictConfig
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding, get_linear_schedule_with_warmup

from peftbench import methods, records
from peftbench.budget import fit_budget
from peftbench.config import RunConfig, validate
from peftbench.data import TASKS, TokenizedDataset, check_sources, load_task
from peftbench.loggers import build_loggers
from peftbench.metrics import compute_metrics
from peftbench.models import build_model, build_tokenizer, model_spec, resolve


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
    """Metrics of every set; the validation set's keep plain names, others are prefixed (``mismatched_accuracy``)."""
    metrics = {}
    for name, loader in loaders.items():
        prefix = "" if name == "validation" else f"{name}_"
        metrics.update({prefix + key: value for key, value in evaluate(accelerator, model, loader, task).items()})
    return metrics


def fit(run: RunConfig, accelerator: Accelerator, model: torch.nn.Module, method: methods.Method,
        train_loader: DataLoader, eval_loaders: dict[str, DataLoader], optimizers: list, schedulers: list,
        total_steps: int, log: Any) -> list[dict[str, Any]]:
    """Optimizer steps until ``total_steps``; returns the evaluation history."""
    unwrapped = accelerator.unwrap_model(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    steps_per_epoch = math.ceil(len(train_loader) / run.trainer.gradient_accumulation_steps)
    eval_every = run.trainer.eval_every or steps_per_epoch
    history, step, epoch, running_loss = [], 0, 0, []
    progress = tqdm(total=total_steps, disable=not accelerator.is_main_process, desc=run.run_id)
    method.on_train_start(unwrapped, total_steps)
    model.train()
    while step < total_steps:
        train_loader.set_epoch(epoch)
        for batch in train_loader:
            with accelerator.accumulate(model):
                task_loss = model(**batch).loss
                extra = method.extra_losses(unwrapped)
                accelerator.backward(task_loss + sum(extra.values()))
                if not accelerator.sync_gradients:
                    continue  # a micro-batch of gradient accumulation: no optimizer step yet
                if run.trainer.max_grad_norm is not None:
                    accelerator.clip_grad_norm_(trainable, run.trainer.max_grad_norm)
                for optimizer in optimizers:
                    optimizer.step()
                step += 1
                method.after_optimizer_step(unwrapped, step)  # before zero_grad: AdaLoRA reads the gradients
                for scheduler in schedulers:
                    scheduler.step()
                for optimizer in optimizers:
                    optimizer.zero_grad(set_to_none=True)
            running_loss.append(accelerator.reduce(task_loss.detach(), "mean").item())
            progress.update(1)
            if step % run.trainer.log_every == 0:
                values = {"train/loss": sum(running_loss) / len(running_loss),
                          "train/lr": schedulers[0].get_last_lr()[0],
                          **{f"train/{k}": v.item() for k, v in extra.items()}}
                log.log(values, step)
            if step % eval_every == 0 or step == total_steps:
                entry = {"step": step, "epoch": round(step / steps_per_epoch, 4),
                         "train_loss": sum(running_loss) / len(running_loss),
                         "eval": evaluate_sets(accelerator, model, eval_loaders, run.task.name),
                         "method": method.on_evaluate(unwrapped, step)}
                history.append(entry)
                running_loss = []
                log.log({f"eval/{k}": v for k, v in entry["eval"].items()}, step)
                main_metric = TASKS[run.task.name].main_metric
                progress.set_postfix({main_metric: entry["eval"][main_metric]})
            if step >= total_steps:
                break
        epoch += 1
    progress.close()
    return history


def summarize(history: list[dict[str, Any]], main_metric: str, test: dict[str, float]) -> dict[str, Any]:
    best = max(history, key=lambda entry: entry["eval"][main_metric])
    return {"main_metric": main_metric, "final": {**history[-1]["eval"], **test}, "best": best["eval"],
            "best_step": best["step"]}


def train(cfg: DictConfig | RunConfig) -> dict[str, Any]:
    """Run one configuration; returns its record (the existing one if it already completed)."""
    run = cfg if isinstance(cfg, RunConfig) else validate(cfg)
    run_dir = Path(run.paths.results_dir) / run.experiment_name / run.run_id
    if records.is_completed(run_dir) and not run.force:
        print(f"skipping {run.run_id}: completed record at {run_dir / records.RECORD_NAME} (force=true re-runs it)")
        return records.read_record(run_dir)
    preflight(run)
    accelerator = Accelerator(cpu=run.trainer.cpu, mixed_precision=run.trainer.mixed_precision,
                              gradient_accumulation_steps=run.trainer.gradient_accumulation_steps,
                              dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True))
    record = new_record(run, accelerator.num_processes)
    write = (lambda: records.write_json_atomic(run_dir / records.RECORD_NAME, record)) \
        if accelerator.is_main_process else (lambda: None)
    write()
    try:
        return run_training(run, accelerator, run_dir, record, write)
    except BaseException as error:
        record.update(status="failed", finished_at=records.now(), wall_time_s=time.time() - record["started_unix"],
                      failure={"type": type(error).__name__, "message": str(error)[:2000],
                               "traceback": traceback.format_exc()[-8000:]})
        write()
        raise


def run_training(run: RunConfig, accelerator: Accelerator, run_dir: Path, record: dict, write: Any) -> dict:
    set_seed(run.seed)
    tokenizer = build_tokenizer(run.model)
    datasets, data_info = build_data(run, tokenizer)
    spec = model_spec(run.model)
    model = build_model(run.model, TASKS[run.task.name].num_labels)
    method = methods.get(run.method_name).method(run.method, spec)
    model = method.apply(model)
    record["parameters"] = methods.count_parameters(model, spec)
    record["data"] = data_info
    collate = DataCollatorWithPadding(tokenizer)
    train_loader = DataLoader(datasets["train"], batch_size=run.trainer.batch_size // accelerator.num_processes,
                              shuffle=True, collate_fn=collate, num_workers=run.trainer.num_workers)
    eval_names = data_info["eval_sets"]
    eval_loaders = {n: DataLoader(datasets[n], batch_size=run.trainer.eval_batch_size, collate_fn=collate)
                    for n in [*eval_names, *data_info["test_sets"]]}
    optimizers = build_optimizers(run, model, method)
    model, train_loader, *rest = accelerator.prepare(model, train_loader, *eval_loaders.values(), *optimizers)
    eval_loaders = dict(zip(eval_loaders, rest[:len(eval_loaders)], strict=True))
    optimizers = rest[len(eval_loaders):]
    steps_per_epoch = math.ceil(len(train_loader) / run.trainer.gradient_accumulation_steps)
    total_steps = run.trainer.max_steps or run.trainer.epochs * steps_per_epoch
    schedulers = build_schedulers(run, optimizers, total_steps)
    log = build_loggers(run.logger, run_dir, run.run_id, run.resolved) if accelerator.is_main_process \
        else build_loggers(type(run.logger)(name="none"), run_dir, run.run_id, {})
    history = fit(run, accelerator, model, method, train_loader,
                  {n: eval_loaders[n] for n in eval_names}, optimizers, schedulers, total_steps, log)
    test_loaders = {n: eval_loaders[n] for n in data_info["test_sets"]}
    test = evaluate_sets(accelerator, model, test_loaders, run.task.name) if test_loaders else {}
    unwrapped = accelerator.unwrap_model(model)
    record["method_records"] = method.on_train_end(unwrapped)
    record["parameters"]["effective"] = method.effective_parameters(unwrapped)
    record.update(status="completed", history=history, total_steps=total_steps,
                  metrics=summarize(history, TASKS[run.task.name].main_metric, test),
                  finished_at=records.now(), wall_time_s=round(time.time() - record["started_unix"], 2),
                  peak_memory_mb=records.peak_memory_mb())
    log.finish()
    write()
    return record


def new_record(run: RunConfig, world_size: int) -> dict[str, Any]:
    return {"schema_version": records.SCHEMA_VERSION, "run_id": run.run_id, "experiment": run.experiment_name,
            "status": "running", "failure": None, "method": run.method_name, "model": run.model.name,
            "task": run.task.name, "budget": run.budget.name, "seed": run.seed, "config": run.resolved,
            "method_config": asdict(run.method), "started_at": records.now(), "finished_at": None,
            "wall_time_s": None, "started_unix": time.time(), "world_size": world_size,
            "versions": records.package_versions(), "git": records.git_state()}
