"""Question/context windows: one example becomes one feature per window of its context.

``[CLS] question [SEP] context window [SEP]`` (the tokenizer's pair template), ``truncation="only_second"``,
``max_length`` tokens, consecutive windows overlapping by ``doc_stride`` tokens. Token positions index this
input as the tokenizer builds it: the context starts after the question and its special tokens, and
``offsets[i]`` is the character span of token i in the context (None for question, special and padding tokens).
A method that puts k virtual positions in front of the input (``method.virtual_tokens()``) must shift
``start_positions``/``end_positions`` by k itself in ``prepare_inputs``; the family's ``predict`` strips the
first k logits, so post-processing always sees positions of the input built here.

Training labels: the first gold answer's first and last token when it lies wholly inside the window, otherwise
(and for unanswerable questions) the CLS token's position for both.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset
from transformers import DataCollatorWithPadding

from peftbench.tasks.base import DataError
from peftbench.tasks.extractive_qa.sources import Example


class QAFeatures(Dataset):
    """Tokenised windows with span labels; keeps the examples and offsets that post-processing needs."""

    def __init__(self, examples: list[Example], inputs: dict[str, list], example_index: list[int],
                 offsets: list[list[tuple[int, int] | None]], cls_index: list[int], starts: list[int],
                 ends: list[int]) -> None:
        self.examples, self.inputs, self.example_index = examples, inputs, example_index
        self.offsets, self.cls_index, self.starts, self.ends = offsets, cls_index, starts, ends
        self.return_ids = False

    def __len__(self) -> int:
        return len(self.example_index)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = {key: values[index] for key, values in self.inputs.items()}
        item["start_positions"], item["end_positions"] = self.starts[index], self.ends[index]
        if self.return_ids:  # only while ``predict`` runs: the training batch holds model arguments only
            item["feature_index"] = index
        return item

    def length(self, index: int) -> int:
        return len(self.inputs["input_ids"][index])

    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.inputs["input_ids"]]

    @contextlib.contextmanager
    def with_feature_ids(self) -> Iterator[None]:
        self.return_ids = True
        try:
            yield
        finally:
            self.return_ids = False


def check_question_lengths(examples: list[Example], tokenizer: Any, max_length: int, doc_stride: int) -> None:
    """Every question must leave more than ``doc_stride`` context tokens in ``max_length``."""
    questions = tokenizer([e.question.lstrip() for e in examples], add_special_tokens=False)["input_ids"]
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    for example, ids in zip(examples, questions, strict=True):
        room = max_length - len(ids) - specials
        if room <= doc_stride:
            raise DataError(f"question {example.id} (article {example.title!r}) has {len(ids)} tokens: "
                            f"task.max_length={max_length} leaves {room} context tokens, not more than "
                            f"task.options.doc_stride={doc_stride}; raise task.max_length or lower the stride")


def _label(example: Example, offsets: list[tuple[int, int] | None], cls: int) -> tuple[int, int]:
    if not example.answerable:
        return cls, cls
    start_char = example.starts[0]
    end_char = start_char + len(example.answers[0])
    context = [i for i, span in enumerate(offsets) if span is not None]
    if not context or offsets[context[0]][0] > start_char or offsets[context[-1]][1] < end_char:
        return cls, cls  # the answer is not wholly inside this window
    start = max(i for i in context if offsets[i][0] <= start_char)
    end = min(i for i in context if offsets[i][1] >= end_char)
    return start, end


def featurize(examples: list[Example], tokenizer: Any, max_length: int, doc_stride: int) -> QAFeatures:
    if not examples:
        return QAFeatures([], {"input_ids": []}, [], [], [], [], [])
    check_question_lengths(examples, tokenizer, max_length, doc_stride)
    encoded = tokenizer([e.question.lstrip() for e in examples], [e.context for e in examples],
                        truncation="only_second", max_length=max_length, stride=doc_stride,
                        return_overflowing_tokens=True, return_offsets_mapping=True, padding=False)
    mapping = encoded.pop("overflow_to_sample_mapping")
    raw_offsets = encoded.pop("offset_mapping")
    offsets, cls_index, starts, ends = [], [], [], []
    for i, example_index in enumerate(mapping):
        sequence = encoded.sequence_ids(i)
        window = [tuple(span) if sequence[t] == 1 else None for t, span in enumerate(raw_offsets[i])]
        ids = encoded["input_ids"][i]
        cls = ids.index(tokenizer.cls_token_id) if tokenizer.cls_token_id in ids else 0
        start, end = _label(examples[example_index], window, cls)
        offsets.append(window)
        cls_index.append(cls)
        starts.append(start)
        ends.append(end)
    inputs = {key: list(values) for key, values in encoded.items()}
    return QAFeatures(examples, inputs, list(mapping), offsets, cls_index, starts, ends)


class Collator:
    """Padding of the model inputs, to ``max_length`` or (``None``) to the batch's longest window; span labels and
    feature ids become tensors."""

    def __init__(self, tokenizer: Any, max_length: int | None = None) -> None:
        fixed = {"padding": "max_length", "max_length": max_length} if max_length is not None else {}
        self.pad = DataCollatorWithPadding(tokenizer, **fixed)

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        extra = [k for k in ("start_positions", "end_positions", "feature_index") if k in items[0]]
        batch = self.pad([{k: v for k, v in item.items() if k not in extra} for item in items])
        for key in extra:
            batch[key] = torch.tensor([item[key] for item in items], dtype=torch.long)
        return batch
