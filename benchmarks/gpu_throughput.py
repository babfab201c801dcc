"""GPU throughput of every registered method through the harness, against a bare loop on the same model.

    python benchmarks/gpu_throughput.py                  # CUDA, bf16: DeBERTaV3-base and RoBERTa-large, ~5 min (H100)
    python benchmarks/gpu_throughput.py --cpu-smoke      # tiny models, 2 timed steps, fp32 on CPU (CI)

Models are built from ``conf/model/deberta_v3_base.yaml`` and ``roberta_large.yaml`` with ``pretrained=null``:
the real sizes from their ``architecture`` (DebertaV2Config / RobertaConfig), random weights, no download. Each
backbone is built once on the device; every method gets a deep copy and applies itself through the registry
(``peftbench.methods``), exactly as ``peftbench.train.setup`` does, with its ``conf/method`` defaults.

Per method and model, two timings on the same model, one after the other:

- **harness**: the real ``peftbench.train.fit`` (Accelerate, ``trainer.mixed_precision=bf16``, the method's hooks,
  extra losses and optimizers, clipping, scheduler, the per-step loss read-out) on fixed-shape synthetic batches
  (``TaskFamily.synthetic_batch``: batch x seq random ids, full mask, random labels), timed per optimizer step by
  fit's logger hook (as ``benchmarks/common.py``);
- **bare**: a plain torch loop on that model: ``autocast(bf16)``, the method's ``prepare_inputs`` (part of its
  forward), ``loss.backward()``, one torch AdamW over the trainable parameters, ``zero_grad``, synchronise.

Printed per row: tokens/s (input tokens, virtual tokens not counted) and ms/step of the harness, the ratio of
harness to bare step time, peak CUDA memory of each (``max_memory_allocated`` less what was allocated before the
model's copy: the copy, the method, optimizer state and activations), the
harness's step time relative to LoRA's, and trainable parameters. AdaLoRA runs with t_i = t_f = 1 so every timed
step updates importance scores (ΔT from its config). A method that fails prints its error in its row. QLoRA needs
a pretrained backbone to quantise, so it is skipped here.
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import statistics
import time
import traceback
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import transformers  # noqa: E402
from common import CONF, NEVER, StepClock  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from peftbench import methods, tasks  # noqa: E402
from peftbench.checkpoint import LoopState  # noqa: E402
from peftbench.config import RunConfig, validate  # noqa: E402
from peftbench.models import build_config, model_spec  # noqa: E402
from peftbench.train import Parts, build_optimizers, build_schedulers, fit, make_accelerator  # noqa: E402

MODELS = {"full": [("deberta_v3_base", 32), ("roberta_large", 16)], "smoke": [("tiny_deberta", 4), ("tiny_roberta", 4)]}
METHOD_OVERRIDES = {"adalora": ["method.t_i=1", "method.t_f=1"]}
TAIL = 2  # untimed steps after the window (AdaLoRA's final phase; fit evaluates, with no sets, at its last step)


class Synthetic(Dataset):
    """``count`` fixed-shape random examples, drawn once (seeded), so both loops see the same tokens."""

    def __init__(self, family: Any, count: int, length: int, vocab: int) -> None:
        torch.manual_seed(0)
        self.batch = family.synthetic_batch(count, length, vocab)

    def __len__(self) -> int:
        return len(self.batch["input_ids"])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {key: value[index] for key, value in self.batch.items()}


@dataclass
class Row:
    method: str
    harness_ms: float | None = None
    bare_ms: float | None = None
    harness_peak: float | None = None
    bare_peak: float | None = None
    trainable: int | None = None
    error: str | None = None


def run_config(model: str, method: str, batch: int, steps: int, smoke: bool) -> RunConfig:
    overrides = [f"model={model}", "model.pretrained=null", "task=rotten_tomatoes", f"method={method}",
                 *METHOD_OVERRIDES.get(method, []), "logger=none", f"trainer.batch_size={batch}",
                 f"trainer.max_steps={steps}", f"trainer.eval_every={NEVER}", "trainer.log_every=1",
                 f"trainer.cpu={str(smoke).lower()}", f"trainer.mixed_precision={'no' if smoke else 'bf16'}",
                 "experiment_name=gpu_throughput", "paths.cache_dir=null"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return validate(compose("config", overrides=overrides))


def peak_mib(device: torch.device, baseline: int) -> float | None:
    """Peak CUDA memory since the last reset, less ``baseline`` (the pristine backbone kept for the next method)."""
    return (torch.cuda.max_memory_allocated(device) - baseline) / 2**20 if device.type == "cuda" else None


def allocated(device: torch.device) -> int:
    return torch.cuda.memory_allocated(device) if device.type == "cuda" else 0


def reset_peak(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def time_harness(run: RunConfig, accelerator: Any, model: torch.nn.Module, method: Any, family: Any,
                 data: Dataset, warmup: int, steps: int) -> tuple[float, int]:
    """Median ms per step of ``fit`` over steps ``warmup + 1 .. warmup + steps``, and the trainable count."""
    optimizers = build_optimizers(run, model, method)
    loader = DataLoader(data, batch_size=run.trainer.batch_size, shuffle=False)
    model, loader, *optimizers = accelerator.prepare(model, loader, *optimizers)
    parts = Parts(model=model, method=method, family=family, train_loader=loader, eval_loaders={}, test_loaders={},
                  extra_loaders={}, optimizers=optimizers, data_info={}, parameters={},
                  steps_per_epoch=len(loader), padding={})
    total = warmup + steps + TAIL
    schedulers = build_schedulers(run, optimizers, total)
    clock = StepClock()
    fit(run, accelerator, parts, schedulers, total, clock, LoopState())
    times = [1000 * (clock.stamps[k] - clock.stamps[k - 1]) for k in range(warmup + 1, warmup + steps + 1)]
    return statistics.median(times), sum(p.numel() for p in model.parameters() if p.requires_grad)


def time_bare(model: torch.nn.Module, method: Any, batches: list[dict[str, torch.Tensor]], device: torch.device,
              bf16: bool, lr: float, warmup: int) -> float:
    """Median ms per step of a plain loop on ``model`` (already carrying the method) after ``warmup`` steps."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr)
    model.train()
    stamps = []
    for batch in batches:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(**method.prepare_inputs(model, batch)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        stamps.append(time.perf_counter())
    del optimizer
    times = [1000 * (stamps[k] - stamps[k - 1]) for k in range(warmup, len(batches))]
    return statistics.median(times)


def measure(name: str, model_name: str, pristine: torch.nn.Module, accelerator: Any, args: argparse.Namespace,
            batch: int, device: torch.device) -> Row:
    row = Row(name)
    try:
        total = args.warmup + args.steps + TAIL
        run = run_config(model_name, name, batch, total, args.cpu_smoke)
        family = tasks.family_for(run.task)
        spec = model_spec(run.model, family.name)
        data = Synthetic(family, batch * total, args.seq, pristine.config.vocab_size)
        batches = [{k: v[i * batch:(i + 1) * batch].to(device) for k, v in data.batch.items()}
                   for i in range(args.warmup + args.steps + 1)]
        reset_peak(device)
        baseline = allocated(device)  # the pristine backbone and the bare loop's batches (a few MiB)
        torch.manual_seed(run.seed)
        method = methods.get(name).method(run.method, spec)
        model = method.apply(copy.deepcopy(pristine))
        row.harness_ms, row.trainable = time_harness(run, accelerator, model, method, family, data, args.warmup,
                                                     args.steps)
        row.harness_peak = peak_mib(device, baseline)
        accelerator.free_memory()  # drops the prepared optimizers (their state) before the bare loop
        model = accelerator.unwrap_model(model, keep_fp32_wrapper=False)  # the bare loop autocasts by itself
        reset_peak(device)
        row.bare_ms = time_bare(model, method, batches, device, not args.cpu_smoke, run.trainer.lr, args.warmup + 1)
        row.bare_peak = peak_mib(device, baseline)
    except Exception as error:  # noqa: BLE001 - one method's failure is a row, not the end of the table
        row.error = f"{type(error).__name__}: {str(error).splitlines()[0][:160] if str(error) else ''}"
        if args.verbose:
            traceback.print_exc()
    finally:
        accelerator.free_memory()
        reset_peak(device)
    return row


def build_backbone(model_name: str, device: torch.device) -> torch.nn.Module:
    """Random-init backbone of the real size, built directly on the device (no weights, no tokenizer)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        run = validate(compose("config", overrides=[f"model={model_name}", "model.pretrained=null"]))
    family = tasks.family_for(run.task)
    config = build_config(run.model, family.num_labels())
    torch.manual_seed(0)
    with torch.device(device):
        return getattr(transformers, family.model_class).from_config(config)


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(model_name: str, batch: int, seq: int, rows: list[Row], device_name: str) -> None:
    lora = next((r.harness_ms for r in rows if r.method == "lora" and r.harness_ms), None)
    print(f"\n### {model_name}: batch {batch} x seq {seq}, {device_name}\n")
    print("| method | tokens/s | harness ms/step | bare ms/step | harness/bare | harness/LoRA | "
          "peak MiB harness | peak MiB bare | trainable |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r.error is not None and r.harness_ms is None:
            print(f"| {r.method} | error: {r.error} | | | | | | | |")
            continue
        tokens = batch * seq / (r.harness_ms / 1000) if r.harness_ms else None
        ratio = r.harness_ms / r.bare_ms if r.harness_ms and r.bare_ms else None
        to_lora = r.harness_ms / lora if r.harness_ms and lora else None
        bare = fmt(r.bare_ms, ".1f") if r.error is None else f"error: {r.error}"
        print(f"| {r.method} | {fmt(tokens, ',.0f')} | {fmt(r.harness_ms, '.1f')} | {bare} | {fmt(ratio, '.3f')} | "
              f"{fmt(to_lora, '.3f')} | {fmt(r.harness_peak, ',.0f')} | {fmt(r.bare_peak, ',.0f')} | "
              f"{fmt(r.trainable, ',')} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny models, 2 steps, fp32 on CPU")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per loop (20; smoke 2)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (3; smoke 1)")
    parser.add_argument("--seq", type=int, default=None, help="sequence length (128; smoke 16)")
    parser.add_argument("--methods", nargs="*", default=None, help="registered methods (default: all but qlora)")
    parser.add_argument("--models", nargs="*", default=None, help="conf/model options with their batch, e.g. "
                        "deberta_v3_base:32")
    parser.add_argument("--verbose", action="store_true", help="print tracebacks of failing methods")
    args = parser.parse_args()
    smoke = args.cpu_smoke
    args.steps = args.steps or (2 if smoke else 20)
    args.warmup = args.warmup or (1 if smoke else 3)
    args.seq = args.seq or (16 if smoke else 128)
    if not smoke and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --cpu-smoke for the reduced CPU form")
    device = torch.device("cpu" if smoke else "cuda")
    chosen = args.methods or [n for n in methods.available() if methods.get(n).method.quantization is None]
    models = [(m.split(":")[0], int(m.split(":")[1])) for m in args.models] if args.models else MODELS[
        "smoke" if smoke else "full"]
    if not smoke:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (fp32)"
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {device_name}, "
          f"{args.warmup} warm-up + {args.steps} timed steps, methods: {' '.join(chosen)}", flush=True)
    accelerator = make_accelerator(run_config(models[0][0], "lora", models[0][1], 1, smoke))
    started = time.perf_counter()
    for model_name, batch in models:
        pristine = build_backbone(model_name, device)
        rows = []
        for name in chosen:
            rows.append(measure(name, model_name, pristine, accelerator, args, batch, device))
            r = rows[-1]
            print(f"{model_name} {name}: harness {fmt(r.harness_ms, '.1f')} ms, bare {fmt(r.bare_ms, '.1f')} ms"
                  f"{'' if r.error is None else ', error: ' + r.error}  [{time.perf_counter() - started:.0f} s]",
                  flush=True)
        print_table(model_name, batch, args.seq, rows, device_name)
        del pristine
        reset_peak(device)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
