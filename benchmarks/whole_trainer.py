"""The quickstart's work with Hugging Face ``Trainer`` + peft: one contender of ``benchmarks/whole_run.py``.

    python benchmarks/whole_trainer.py [--group-by-length] [peftbench overrides]

Same config, split, tokenisation, LoRA, head and hyperparameters as ``python -m peftbench`` (see
``benchmarks/quickstart.py``): Trainer's AdamW (torch) decays the same parameters (LoRA matrices and head weights,
not biases), linear schedule with ``ceil(warmup_ratio * T)`` warm-up steps, clipping, dynamic padding, evaluation
on the validation set every epoch, ``predict`` on the test set at the end; no checkpoints, no reporting
integrations. ``--group-by-length`` switches on Trainer's length-grouped sampler (its best time-to-result policy;
off by default so that the padding policy matches peftbench's). Prints ``RESULT {json}``.
"""

from __future__ import annotations

import sys
import tempfile

import numpy as np
from quickstart import compose_run, load_data, lora_model, report, trainable_count
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments, set_seed

GROUP = "--group-by-length"


def accuracy(prediction) -> dict[str, float]:
    return {"accuracy": float((np.argmax(prediction.predictions, -1) == prediction.label_ids).mean())}


def main() -> None:
    args = sys.argv[1:]
    grouped = GROUP in args
    run = compose_run([a for a in args if a != GROUP])
    trainer_cfg = run.trainer
    set_seed(run.seed)
    tokenizer, datasets, family = load_data(run)
    model = lora_model(run, family)
    warmup = trainer_cfg.warmup_steps if trainer_cfg.warmup_steps is not None else trainer_cfg.warmup_ratio
    with tempfile.TemporaryDirectory() as output_dir:
        arguments = TrainingArguments(
            output_dir=output_dir, per_device_train_batch_size=trainer_cfg.batch_size,
            per_device_eval_batch_size=trainer_cfg.eval_batch_size, num_train_epochs=trainer_cfg.epochs,
            max_steps=trainer_cfg.max_steps or -1, learning_rate=trainer_cfg.lr,
            weight_decay=trainer_cfg.weight_decay, warmup_steps=warmup, lr_scheduler_type="linear",
            max_grad_norm=trainer_cfg.max_grad_norm or 0.0, seed=run.seed, eval_strategy="epoch",
            save_strategy="no", report_to="none", logging_steps=trainer_cfg.log_every,
            use_cpu=trainer_cfg.cpu, dataloader_num_workers=trainer_cfg.num_workers, optim="adamw_torch",
            train_sampling_strategy="group_by_length" if grouped else "random",
        )
        trainer = Trainer(model=model, args=arguments, train_dataset=datasets["train"],
                          eval_dataset=datasets["validation"], data_collator=DataCollatorWithPadding(tokenizer),
                          compute_metrics=accuracy)
        state = trainer.train()
        history = [entry for entry in trainer.state.log_history if "eval_accuracy" in entry]
        test = trainer.predict(datasets["test"]).metrics
    report(contender="trainer" + ("+grouped" if grouped else ""), steps=state.global_step,
           trainable=trainable_count(model), val_accuracy=history[-1]["eval_accuracy"] if history else None,
           test_accuracy=test["test_accuracy"])


if __name__ == "__main__":
    main()
