"""Per optimizer-step time of the harness (``peftbench.train.fit``) against a bare torch + peft loop.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/step_time.py            # MiniLM, batch 32, max_length 64

Both sides train the same backbone with the same LoRA (``peft.inject_adapter_in_model`` and the LoraConfig of
``peftbench/methods/lora/method.py``, with its fused forward: this measures the harness, not the layer), the same
AdamW param groups, linear schedule and gradient clipping, on the same batch tensors: the bare loop consumes the
first batches of epoch 0 that the harness loader yields, collated once in advance, while the harness collates them
inside its step (that cost is part of its time and printed on its own line). Repeats alternate harness/bare,
bare/harness, ...; each prints ms per step.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from common import (
    Harness,
    add_common_args,
    check_args,
    configure_threads,
    interleaved,
    mean,
    op_count_line,
    ratio_line,
    run_config,
    summary,
)
from peft import LoraConfig, inject_adapter_in_model
from transformers import get_linear_schedule_with_warmup

from peftbench import tasks
from peftbench.config import RunConfig
from peftbench.methods.lora.layer import fuse
from peftbench.models import build_model, model_spec


class BareLoop:
    """The hand-written reference: model(**batch).loss, backward, clip, step, scheduler, zero_grad."""

    def __init__(self, run: RunConfig) -> None:
        torch.manual_seed(run.seed)
        spec, lora, trainer = model_spec(run.model), run.method, run.trainer
        model = build_model(run.model, tasks.family_for(run.task).num_labels())
        config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, bias="none",
                            target_modules=spec.target_regex(tuple(lora.target_types)))
        self.model = inject_adapter_in_model(config, model)
        fuse(self.model)
        for name, parameter in self.model.named_parameters():
            parameter.requires_grad_("lora_" in name or spec.is_head(name))
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        groups = [{"params": [p for p in self.trainable if p.dim() >= 2], "weight_decay": trainer.weight_decay},
                  {"params": [p for p in self.trainable if p.dim() < 2], "weight_decay": 0.0}]
        self.optimizer = torch.optim.AdamW(groups, lr=trainer.lr)
        total = trainer.max_steps
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, math.ceil(trainer.warmup_ratio * total),
                                                         total)
        self.max_grad_norm = trainer.max_grad_norm

    def time_steps(self, batches: list[dict[str, torch.Tensor]], warmup: int) -> list[float]:
        """ms of each step after the first ``warmup``, stamped after each step as fit's clock is."""
        self.model.train()
        stamps = []
        for batch in batches:
            loss = self.model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.trainable, self.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            loss.item()
            stamps.append(time.perf_counter())
        return [1000 * (stamps[k] - stamps[k - 1]) for k in range(warmup, len(batches))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, steps=4, repeats=10)
    parser.add_argument("--rank", type=int, default=8, help="LoRA rank (method.r)")
    parser.add_argument("--ops", action="store_true",
                        help="after timing, count aten operators and host syncs per step on both sides")
    args = parser.parse_args()
    check_args(args)
    configure_threads(args.threads)
    length = args.warmup + args.steps
    run = run_config(args, (args.repeats + 1) * length, "method=lora", f"method.r={args.rank}")
    harness = Harness(run)
    bare = BareLoop(run)
    batches = harness.batches(length)
    counts = (sum(p.numel() for p in harness.parts.model.parameters() if p.requires_grad), sum(
        p.numel() for p in bare.trainable))
    shape = tuple(batches[0]["input_ids"].shape)
    print(f"model {args.model}, LoRA r={args.rank}, batch {args.batch_size}, max_length {args.max_length} "
          f"(first batch {shape}), {args.steps} timed steps after {args.warmup} warm-up, {args.repeats} repeats")
    print(f"trainable parameters: harness {counts[0]:,}  bare {counts[1]:,}")
    harness.time_steps(args.warmup, args.steps)  # discarded: first touch of activations and optimizer state
    bare.time_steps(batches, args.warmup)
    times: dict[str, list[list[float]]] = {"harness": [], "bare": []}
    for repeat in range(args.repeats):
        for side in interleaved(repeat, ["harness", "bare"]):
            if side == "harness":
                times[side].append(harness.time_steps(args.warmup, args.steps))
            else:
                times[side].append(bare.time_steps(batches, args.warmup))
        print(f"repeat {repeat + 1}: harness {mean(times['harness'][-1]):.1f} ms/step  "
              f"bare {mean(times['bare'][-1]):.1f} ms/step", flush=True)
    loading = harness.loading_ms(length)
    print(summary("harness", times["harness"]))
    print(summary("bare", times["bare"]))
    print(f"harness data loading (fetch + collate, inside its step): {loading:.2f} ms/batch")
    print(ratio_line("harness/bare", times["harness"], times["bare"]))
    if args.ops:  # whole calls: the warm-up steps and fit's last-step evaluation (32 examples) are included
        print(op_count_line("harness", lambda: harness.time_steps(args.warmup, args.steps), length))
        print(op_count_line("bare", lambda: bare.time_steps(batches, args.warmup), length))


if __name__ == "__main__":
    main()
