"""Run by tests/tasks/test_seq2seq_multiprocess.py under 1 or N processes: a seeded random tiny BART predicts the
first 11 XSum validation pairs (eval batch 4: the last round is padded under 2 processes) with a generation
subset of 5 and in full; rank 0 writes the decoded summaries and the loss sums to argv[1]."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support import ROOT, compose  # noqa: E402

from peftbench import methods, tasks  # noqa: E402
from peftbench.config import validate  # noqa: E402
from peftbench.models import build_model, build_tokenizer, model_spec  # noqa: E402


def main(out: str) -> None:
    run = validate(compose(["model=tiny_bart", "method=lora", "task=xsum", "task.options.split_from=test.jsonl",
                            f"data_dir={ROOT.parent / 'shared' / 'data' / 'summarization'}",
                            "task.options.max_source_length=64", "task.options.max_target_length=16",
                            "task.options.num_beams=2", "task.options.eval_generate_examples=5"]))
    family = tasks.family_for(run.task)
    tokenizer = build_tokenizer(run.model)
    dataset = family.featurize(family.load(run.data_dir).eval["validation"][:11], tokenizer)
    torch.manual_seed(0)
    model = build_model(run.model, None, model_class=family.model_class)
    method = methods.get("lora").method(run.method, model_spec(run.model, "seq2seq"))
    model = method.apply(model)
    accelerator = Accelerator(cpu=True)
    model, loader = accelerator.prepare(model, DataLoader(dataset, batch_size=4, collate_fn=family.collator(tokenizer)))
    subset = family.predict(model, loader, accelerator, method)
    full = family.predict(model, loader, accelerator, method, final=True)
    if accelerator.is_main_process:
        Path(out).write_text(json.dumps({"subset": subset, "full": full, "score": family.score(full, dataset)}))


if __name__ == "__main__":
    main(sys.argv[1])
