"""The one training loop: every method and every task family runs through ``fit`` below, on Accelerate (1 or N
processes). ``setup`` builds the parts, ``fit`` runs optimizer steps and evaluations, ``run_training`` is the body
of one run. A run's life around it (skip, lock, resume, record) is in :mod:`peftbench.run`.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from omegaconf import DictConfig
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from peftbench import batching, checkpoint, datacache, heap, methods, records, tasks
from peftbench.checkpoint import LoopState, Preempted, StopFlag
from peftbench.config import RunConfig, validate
from peftbench.loggers import build_loggers
from peftbench.methods.merging import merged_for_evaluation
from peftbench.models import build_model, build_tokenizer, model_spec
from peftbench.run import execute, make_accelerator, run_dir_of  # noqa: F401 - make_accelerator for recipes
from peftbench.tasks.base import TaskFamily


@dataclass
class Parts:
    """Everything ``setup`` builds, prepared by Accelerate."""

    model: torch.nn.Module
    method: methods.Method
    family: TaskFamily
    train_loader: DataLoader
    eval_loaders: dict[str, DataLoader]  # choose the best step
    test_loaders: dict[str, DataLoader]  # scored once, at the end
    extra_loaders: dict[str, DataLoader]  # recipe-specific sets (e.g. SoRA's memorization subset)
    optimizers: list[torch.optim.Optimizer]
    data_info: dict[str, Any]
    parameters: dict[str, int]
    steps_per_epoch: int
    padding: dict[str, Any]  # training padding of one epoch, with and without length grouping (from lengths)
    merge_for_evaluation: bool = True  # evaluate through merged weights where the method's modules allow it


def build_data(run: RunConfig, family: TaskFamily, tokenizer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every split tokenized, read from the tokenized-data cache when an earlier run prepared the same data;
    ``info["preparation"]`` says whether it did and how long preparing took."""
    started = time.perf_counter()
    (datasets, info), cache = datacache.cached(run.paths.cache_dir, lambda: datacache.cache_key(run, family, tokenizer),
                                               lambda: tokenize(run, family, tokenizer))
    for dataset in datasets.values():
        if getattr(dataset, "tokenizer", False) is None:  # not pickled with the entry (a seq2seq set's)
            dataset.tokenizer = tokenizer
    return datasets, {**info, "preparation": {"cache": cache, "seconds": round(time.perf_counter() - started, 3)}}


def tokenize(run: RunConfig, family: TaskFamily, tokenizer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    splits = family.load(run.data_dir)
    cut_train, cut_eval = run.task.max_train_samples, run.task.max_eval_samples
    datasets = {"train": family.featurize(splits.train[:cut_train], tokenizer)}
    datasets.update({name: family.featurize(rows[:cut_eval], tokenizer) for name, rows in splits.eval.items()})
    datasets.update({name: family.featurize(rows[:cut_eval], tokenizer) for name, rows in splits.test.items()})
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
    family = tasks.family_for(run.task)
    tokenizer = build_tokenizer(run.model)
    datasets, info = build_data(run, family, tokenizer)
    spec = model_spec(run.model, family.name)
    model = build_model(run.model, family.num_labels(), model_class=family.model_class)
    method = methods.get(run.method_name).method(run.method, spec)
    model = method.apply(model)
    parameters = methods.count_parameters(model, spec)
    collate = family.collator(tokenizer)
    train_loader, padding = batching.train_loader(
        datasets["train"], run.trainer.batch_size // accelerator.num_processes, collate, seed=run.seed,
        group_by_length=run.trainer.group_by_length, processes=accelerator.num_processes,
        num_workers=run.trainer.num_workers, padded_length=family.padded_length())
    extra = extra_sets(datasets) if extra_sets else {}
    held_out = {**{n: datasets[n] for n in [*info["eval_sets"], *info["test_sets"]]}, **extra}
    batch = run.trainer.eval_batch_size
    loaders = {name: DataLoader(batching.sorted_for_evaluation(data, family.evaluation_order(data)),
                                batch_size=batch, collate_fn=collate) for name, data in held_out.items()}
    optimizers = build_optimizers(run, model, method)
    model, train_loader, *rest = accelerator.prepare(model, train_loader, *loaders.values(), *optimizers)
    loaders = dict(zip(loaders, rest[:len(loaders)], strict=True))
    return Parts(model=model, method=method, family=family, train_loader=train_loader,
                 eval_loaders={n: loaders[n] for n in info["eval_sets"]},
                 test_loaders={n: loaders[n] for n in info["test_sets"]},
                 extra_loaders={n: loaders[n] for n in extra}, optimizers=rest[len(loaders):],
                 data_info=info, parameters=parameters, padding=padding,
                 merge_for_evaluation=run.trainer.merge_for_evaluation,
                 steps_per_epoch=math.ceil(len(train_loader) / run.trainer.gradient_accumulation_steps))


def evaluate_sets(accelerator: Accelerator, parts: Parts, loaders: dict[str, DataLoader], *,
                  final: bool = False) -> dict[str, float]:
    """Metrics of every set; validation keeps plain names, other sets are prefixed (``mismatched_accuracy``).
    ``final``: the run's last evaluation or the test sets (a family may evaluate more cheaply before)."""
    metrics = {}
    merged = merged_for_evaluation(accelerator.unwrap_model(parts.model)) if parts.merge_for_evaluation \
        else contextlib.nullcontext()
    with merged:
        for name, loader in loaders.items():
            prefix = "" if name == "validation" else f"{name}_"
            scores = parts.family.evaluate(parts.model, loader, accelerator, parts.method, final=final)
            metrics.update({prefix + key: value for key, value in scores.items()})
    heap.release()  # the evaluation's batch shapes would otherwise fragment the heap of the next training steps
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
    progress = tqdm(total=stop_step, initial=state.step, disable=not accelerator.is_main_process, desc=run.run_id)
    method, unwrapped = parts.method, accelerator.unwrap_model(parts.model)
    method.on_train_start(unwrapped, stop_step)
    parts.model.train()
    try:
        _steps(run, accelerator, parts, schedulers, stop_step, log, state, save, flag, progress)
    finally:
        progress.close()  # also when preempted: the one-line message must not land inside the bar
    return state


def _steps(run: RunConfig, accelerator: Accelerator, parts: Parts, schedulers: list, stop_step: int, log: Any,
           state: LoopState, save: Any, flag: StopFlag | None, progress: Any) -> None:
    """The optimizer steps of :func:`fit`."""
    model, method = parts.model, parts.method
    unwrapped = accelerator.unwrap_model(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    eval_every = run.trainer.eval_every or parts.steps_per_epoch
    accumulation = run.trainer.gradient_accumulation_steps
    seen = Seen(accelerator)
    while state.step < stop_step:
        parts.train_loader.set_epoch(state.epoch)
        batches = resume_batches(accelerator, parts.train_loader, state.batches_in_epoch * accumulation, state)
        for batch in batches:
            seen.add(batch)
            with accelerator.accumulate(model):
                task_loss = model(**method.prepare_inputs(unwrapped, batch)).loss
                extra = method.extra_losses(unwrapped)
                loss = task_loss + sum(extra.values())
                accelerator.backward(loss)
                # The step's one host read, once backward is queued (a GPU keeps working while the host waits;
                # reading before backward stalled it): the check below and the task loss that is logged.
                checked, reported = read_losses(accelerator, loss, task_loss, accelerator.sync_gradients)
                if not math.isfinite(checked):  # before any optimizer step: the update is never applied
                    raise FloatingPointError(f"non-finite loss {checked} at optimizer step {state.step + 1}")
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
            state.running_loss.append(reported)
            progress.update(1)
            if state.step % run.trainer.log_every == 0:
                log.log({"train/loss": state.running_loss[-1], "train/lr": schedulers[0].get_last_lr()[0],
                         **{f"train/{k}": v.item() for k, v in extra.items()}}, state.step)
            evaluated = state.step % eval_every == 0 or state.step == stop_step
            if evaluated:
                evaluate_step(run, accelerator, parts, state, log, final=state.step == stop_step)
            stopping = flag is not None and stop_requested(accelerator, flag)
            every = run.trainer.checkpoint_every
            if save is not None and (stopping or evaluated or (every and state.step % every == 0)):
                seen.flush(state)
                save(state)
            if stopping:
                raise Preempted(f"stopped by {flag.signal_name or 'signal'} after step {state.step}", flag)
            if state.step >= stop_step:
                break
        else:
            state.epoch, state.batches_in_epoch = state.epoch + 1, 0
    seen.flush(state)


def read_losses(accelerator: Accelerator, loss: torch.Tensor, task_loss: torch.Tensor,
                with_task: bool) -> tuple[float, float | None]:
    """The total loss of this process and, when ``with_task``, the task loss averaged over processes, in one
    device-to-host copy."""
    if not with_task:
        return loss.item(), None
    both = [loss.detach().float(), accelerator.reduce(task_loss.detach(), "mean").float()]  # bf16 models too
    checked, reported = torch.stack(both).tolist()
    return checked, reported


class Seen:
    """Examples, non-padding tokens and padded batch tokens trained on, summed over processes. Counted on the
    device and read only at checkpoints and at the end, so the loop adds no synchronisation per step."""

    def __init__(self, accelerator: Accelerator) -> None:
        self.accelerator = accelerator
        self.counts = torch.zeros(3, dtype=torch.long, device=accelerator.device)

    def add(self, batch: dict[str, Any]) -> None:
        mask = batch.get("attention_mask")
        tokens = mask.sum() if mask is not None else batch["input_ids"].numel()
        self.counts[0] += len(batch["input_ids"])
        self.counts[1] += tokens
        self.counts[2] += batch["input_ids"].numel()

    def flush(self, state: LoopState) -> None:
        examples, tokens, batch_tokens = self.accelerator.reduce(self.counts, "sum").tolist()
        state.examples_seen += int(examples)
        state.tokens_seen += int(tokens)
        state.batch_tokens_seen += int(batch_tokens)
        self.counts.zero_()


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


def evaluate_step(run: RunConfig, accelerator: Accelerator, parts: Parts, state: LoopState, log: Any, *,
                  final: bool = False) -> None:
    unwrapped = accelerator.unwrap_model(parts.model)
    entry = {"step": state.step, "epoch": round(state.step / parts.steps_per_epoch, 4),
             "train_loss": sum(state.running_loss) / max(len(state.running_loss), 1),
             "eval": evaluate_sets(accelerator, parts, parts.eval_loaders, final=final),
             "method": parts.method.on_evaluate(unwrapped, state.step)}
    state.history.append(entry)
    state.running_loss = []
    log.log({f"eval/{k}": v for k, v in entry["eval"].items()}, state.step)


def summarize(history: list[dict[str, Any]], family: TaskFamily, test: dict[str, float]) -> dict[str, Any]:
    """Final and best evaluation; the best is chosen on the evaluation set in the main metric's direction."""
    best = history[0]
    for entry in history[1:]:
        best = entry if family.better(entry["eval"], best["eval"]) else best
    return {"main_metric": family.task.main_metric, "final": {**history[-1]["eval"], **test}, "best": best["eval"],
            "best_step": best["step"]}


def train(cfg: DictConfig | RunConfig) -> dict[str, Any]:
    """Run one configuration; returns its record (the existing one if it already completed)."""
    run = cfg if isinstance(cfg, RunConfig) else validate(cfg)
    return execute(run, run_dir_of(run), run_training)


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
    test = evaluate_sets(accelerator, parts, parts.test_loaders, final=True) if parts.test_loaders else {}
    record["method_records"] = parts.method.on_train_end(unwrapped)
    record["parameters"]["effective"] = parts.method.effective_parameters(unwrapped)
    record.update(status="completed", history=state.history, total_steps=total_steps,
                  metrics=summarize(state.history, parts.family, test), cost=cost(accelerator, state, parts.padding),
                  finished_at=records.now(), wall_time_s=round(elapsed + time.time() - started, 2),
                  peak_memory_mb=records.peak_memory_mb())
    log.finish()
    write()
    if accelerator.is_main_process:
        (run_dir / checkpoint.CHECKPOINT_NAME).unlink(missing_ok=True)
    return record


def cost(accelerator: Accelerator, state: LoopState, padding: dict[str, Any]) -> dict[str, Any]:
    """What the run consumed, for throughput tables: optimizer steps, examples and non-padding tokens trained on,
    and the padding of its training batches as measured beside what one epoch would have without grouping."""
    device = accelerator.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    measured = 1 - state.tokens_seen / state.batch_tokens_seen if state.batch_tokens_seen else 0.0
    return {"device": name, "world_size": accelerator.num_processes, "optimizer_steps": state.step,
            "examples_seen": state.examples_seen, "tokens_seen": state.tokens_seen,
            "batch_tokens_seen": state.batch_tokens_seen, "padding_fraction": round(measured, 6), **padding}
