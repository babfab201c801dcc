"""The quickstart's work as a bare torch + peft loop: one contender of ``benchmarks/whole_run.py``.

    python benchmarks/whole_bare.py [peftbench overrides]     # e.g. task.max_train_samples=64 trainer.epochs=1

Same config, split, tokenisation, LoRA, head and hyperparameters as ``python -m peftbench`` (see
``benchmarks/quickstart.py``): AdamW on the decay groups, linear schedule with warm-up, clipping, dynamic padding,
validation after each epoch, test at the end. Nothing is logged or written. Prints ``RESULT {json}``.
"""

from __future__ import annotations

import math
import sys

import torch
from quickstart import compose_run, decay_groups, device_of, load_data, lora_model, report, trainable_count
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding, get_linear_schedule_with_warmup, set_seed


@torch.no_grad()
def accuracy(model: torch.nn.Module, loader: DataLoader, device: torch.device) -> float:
    model.eval()
    correct = total = 0
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        labels = batch.pop("labels")
        correct += int((model(**batch).logits.argmax(-1) == labels).sum())
        total += len(labels)
    model.train()
    return correct / total


def main() -> None:
    run = compose_run(sys.argv[1:])
    trainer, device = run.trainer, device_of(run)
    set_seed(run.seed)
    tokenizer, datasets, family = load_data(run)
    model = lora_model(run, family).to(device)
    collate = DataCollatorWithPadding(tokenizer)
    train = DataLoader(datasets["train"], batch_size=trainer.batch_size, shuffle=True, collate_fn=collate,
                       num_workers=trainer.num_workers)
    held_out = {name: DataLoader(datasets[name], batch_size=trainer.eval_batch_size, collate_fn=collate)
                for name in ("validation", "test")}
    optimizer = torch.optim.AdamW(decay_groups(model, trainer.weight_decay), lr=trainer.lr)
    total = trainer.max_steps or trainer.epochs * len(train)
    warmup = trainer.warmup_steps if trainer.warmup_steps is not None else math.ceil(trainer.warmup_ratio * total)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.train()
    step, val = 0, None
    while step < total:
        for batch in train:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            model(**batch).loss.backward()
            if trainer.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(trainable, trainer.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step == total:
                break
        val = accuracy(model, held_out["validation"], device)  # after each epoch (and after the last step)
    report(contender="bare", steps=step, trainable=trainable_count(model), val_accuracy=val,
           test_accuracy=accuracy(model, held_out["test"], device))


if __name__ == "__main__":
    main()
