"""Summarization (XSum, CNN/DailyMail) with ``AutoModelForSeq2SeqLM``: teacher-forced loss on the whole
validation set at every evaluation, beam search and ROUGE on a subset while training and on the whole set at
the end (``final=True``: the run's last evaluation and the test sets).

Run knobs live in the task's ``options:`` node (defaults in :data:`OPTIONS`): lengths, generation settings, the
generation subset and the offline split.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.utils.data import Dataset
from transformers import DataCollatorForSeq2Seq

from peftbench.batching import base_dataset, in_dataset_order, length_order, lengths_of
from peftbench.tasks.base import TaskFamily, TaskSplits
from peftbench.tasks.seq2seq import sources
from peftbench.tasks.seq2seq.rouge import ROUGE_TYPES, rouge

LABEL_PAD = -100
OPTIONS: dict[str, Any] = {
    "max_source_length": 1024,      # source tokens (truncated)
    "max_target_length": 128,       # target tokens for training and the loss (truncated)
    "num_beams": 4,
    "generation_max_length": None,  # max new tokens when generating; null = max_target_length
    "min_length": 0,
    "no_repeat_ngram_size": 0,
    "length_penalty": 1.0,
    "early_stopping": True,
    "eval_generate_examples": None,  # examples generated at non-final evaluations; null = all, 0 = none
    "split_from": None,             # local: one JSON-lines file split by document (see sources.py)
    "split_sizes": {"validation": 100, "test": 100},
}
_POSITIVE = ("max_source_length", "max_target_length", "num_beams")


class SummaryDataset(Dataset):
    """Tokenised pairs; the reference texts and the tokenizer stay with it for decoding and scoring."""

    def __init__(self, examples: list[sources.Example], tokenizer: Any, options: dict[str, Any]) -> None:
        self.references = [e.target for e in examples]
        self.tokenizer = tokenizer
        sources_ = tokenizer([e.source for e in examples], truncation=True, max_length=options["max_source_length"])
        targets = tokenizer(text_target=self.references, truncation=True, max_length=options["max_target_length"])
        self.input_ids, self.attention_mask = sources_["input_ids"], sources_["attention_mask"]
        # The model shifts labels right behind its decoder start token. A WordPiece (BERT) vocabulary opens every
        # target with [CLS], which is the BERT2BERT decoder's start token: drop it, or the decoder learns to
        # repeat it. BART's targets keep <s> (the model forces it as the first generated token).
        cls = tokenizer.cls_token_id if getattr(tokenizer, "cls_token", None) == "[CLS]" else None
        self.labels = [ids[1:] if cls is not None and ids[:1] == [cls] else ids for ids in targets["input_ids"]]

    def __len__(self) -> int:
        return len(self.labels)

    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]

    def __getstate__(self) -> dict[str, Any]:
        # A cached copy leaves the tokenizer out; ``train.build_data`` attaches the run's own.
        return {**self.__dict__, "tokenizer": None}

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return {"input_ids": self.input_ids[index], "attention_mask": self.attention_mask[index],
                "labels": self.labels[index]}


class Seq2Seq(TaskFamily):
    name = "seq2seq"
    model_class = "AutoModelForSeq2SeqLM"

    def synthetic_targets(self, batch_size: int, length: int) -> dict[str, Any]:
        return {"labels": torch.randint(5, 1000, (batch_size, max(2, length // 2)))}  # target token ids

    @property
    def options(self) -> dict[str, Any]:
        return {**OPTIONS, **(self.task.options or {})}

    def check_config(self) -> None:
        unknown = sorted(set(self.task.options or {}) - set(OPTIONS))
        if unknown:
            raise ValueError(f"task.options: unknown key(s) {unknown} for family seq2seq; allowed {sorted(OPTIONS)}")
        options = self.options
        for key in _POSITIVE:
            if not _is_int(options[key]) or options[key] < 1:
                raise ValueError(f"task.options.{key} must be a positive integer, got {options[key]!r}")
        for key in ("generation_max_length", "eval_generate_examples"):
            value = options[key]
            if value is not None and (not _is_int(value) or value < (1 if key == "generation_max_length" else 0)):
                raise ValueError(f"task.options.{key} must be a {'positive' if key[0] == 'g' else 'non-negative'} "
                                 f"integer or null, got {value!r}")
        for key in ("min_length", "no_repeat_ngram_size"):
            if not _is_int(options[key]) or options[key] < 0:
                raise ValueError(f"task.options.{key} must be a non-negative integer, got {options[key]!r}")
        if options["min_length"] > self.max_new_tokens:
            raise ValueError(f"task.options.min_length={options['min_length']} exceeds the generation length "
                             f"{self.max_new_tokens}")
        if not isinstance(options["length_penalty"], int | float) or not math.isfinite(options["length_penalty"]):
            raise ValueError(f"task.options.length_penalty must be a number, got {options['length_penalty']!r}")
        sizes = options["split_sizes"]
        if not isinstance(sizes, dict) or set(sizes) != {"validation", "test"} or \
                any(not _is_int(v) or v < 1 for v in sizes.values()):
            raise ValueError(f"task.options.split_sizes must be {{validation: N, test: M}} with N, M >= 1, got {sizes}")
        missing = [k for k in ("source_field", "target_field", "folder", "files") if k not in self.task.source]
        if missing:
            raise ValueError(f"task.source of {self.task.name} lacks {missing} (family seq2seq)")
        bad = sorted(set(self.task.metrics) - {*ROUGE_TYPES, "loss"})
        if bad:
            raise ValueError(f"task.metrics: {bad} not computed by family seq2seq; allowed {['loss', *ROUGE_TYPES]}")

    @property
    def max_new_tokens(self) -> int:
        options = self.options
        return options["generation_max_length"] or options["max_target_length"]

    def check_sources(self, data_dir: str | None) -> None:
        sources.check_sources(self.task, data_dir)

    def load(self, data_dir: str | None) -> TaskSplits:
        return sources.load_examples(self.task, data_dir)

    def featurize(self, examples: list[sources.Example], tokenizer: Any) -> SummaryDataset:
        return SummaryDataset(examples, tokenizer, self.options)

    def evaluation_order(self, dataset: Any) -> list[int]:
        """Longest source first within the examples generated at non-final evaluations and within the rest, so
        that the first ``eval_generate_examples`` positions are still the set's first examples."""
        lengths = lengths_of(dataset)
        limit = self.options["eval_generate_examples"]
        split = len(lengths) if limit is None else min(limit, len(lengths))
        return length_order(lengths, 0, split) + length_order(lengths, split)

    def collator(self, tokenizer: Any) -> DataCollatorForSeq2Seq:
        # Without a model the collator pads labels with -100 and the model shifts them into decoder inputs.
        return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=LABEL_PAD)

    def generation_kwargs(self) -> dict[str, Any]:
        options = self.options
        kwargs = {"num_beams": options["num_beams"], "max_new_tokens": self.max_new_tokens, "do_sample": False,
                  "no_repeat_ngram_size": options["no_repeat_ngram_size"], "length_penalty": options["length_penalty"],
                  "early_stopping": options["early_stopping"]}
        if options["min_length"]:
            kwargs["min_new_tokens"] = options["min_length"]
        return kwargs

    @torch.no_grad()
    def predict(self, model: Any, loader: Any, accelerator: Any, method: Any, *, final: bool = False) -> dict:
        """Token-level loss over the whole set; generated summaries of the first ``eval_generate_examples``
        examples (all when ``final``), decoded, in dataset order, gathered from every process."""
        dataset = loader.dataset
        tokenizer = base_dataset(dataset).tokenizer
        limit = self.options["eval_generate_examples"]
        limit = len(dataset) if final or limit is None else min(limit, len(dataset))
        # Process p's k-th batch is global batch k * P + p: generate in whole rounds of P batches until `limit`.
        rounds = math.ceil(limit / (loader.total_batch_size if hasattr(loader, "total_batch_size") else
                                    loader.batch_size * accelerator.num_processes)) if limit else 0
        unwrapped = accelerator.unwrap_model(model)
        pad = tokenizer.pad_token_id
        model.eval()
        nll, tokens, generated = [], [], []
        for position, batch in enumerate(loader):
            labels = batch["labels"]
            inputs = method.prepare_inputs(unwrapped, dict(batch))
            logits = model(**inputs).logits.float()
            # logits of virtual tokens (if a method adds any to the decoder) come first: keep the label positions
            logits = logits[:, -labels.shape[1]:]
            losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=LABEL_PAD,
                                                       reduction="none")
            counts = (labels != LABEL_PAD).sum(1)
            example_nll, example_tokens = accelerator.gather_for_metrics((losses.sum(1), counts))
            nll.append(example_nll.double().cpu())
            tokens.append(example_tokens.cpu())
            if position < rounds:
                source = method.prepare_inputs(unwrapped, {"input_ids": batch["input_ids"],
                                                           "attention_mask": batch["attention_mask"]})
                output = unwrapped.generate(**source, **self.generation_kwargs(), pad_token_id=pad)
                output = accelerator.pad_across_processes(output, dim=1, pad_index=pad)
                generated.extend(accelerator.gather_for_metrics(output).cpu().tolist())
        model.train()
        texts = [text.strip() for text in tokenizer.batch_decode(generated[:limit], skip_special_tokens=True)]
        texts = in_dataset_order(dataset, texts)
        return {"nll": torch.cat(nll).sum().item(), "tokens": int(torch.cat(tokens).sum().item()),
                "examples": int(sum(len(t) for t in tokens)), "summaries": texts}

    def score(self, predictions: dict, dataset: Any) -> dict[str, float]:
        metrics = {"loss": predictions["nll"] / max(predictions["tokens"], 1)}
        summaries = predictions["summaries"]
        wanted = [m for m in self.task.metrics if m in ROUGE_TYPES]
        if summaries and wanted:
            metrics.update(rouge(summaries, base_dataset(dataset).references[:len(summaries)], types=wanted))
        return {name: metrics[name] for name in self.task.metrics if name in metrics}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
