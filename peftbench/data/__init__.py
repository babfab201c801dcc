"""Tasks and their data: examples from the hub, local GLUE TSVs or Rotten Tomatoes, tokenised for the loop."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from peftbench.data.loaders import DataError, Example, TaskSplits, check_sources, load_task
from peftbench.data.tasks import GLUE, TASKS, TaskSpec


class TokenizedDataset(Dataset):
    """Examples tokenised once, padded per batch by the collator."""

    def __init__(self, examples: list[Example], tokenizer, max_length: int, regression: bool) -> None:
        columns = list(zip(*(e.texts for e in examples), strict=True)) if examples else []
        pair = len(columns) == 2
        self.encodings = tokenizer(list(columns[0]), list(columns[1]) if pair else None, truncation=True,
                                   max_length=max_length)
        dtype = torch.float if regression else torch.long
        self.labels = torch.tensor([e.label for e in examples], dtype=dtype)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        item = {key: values[index] for key, values in self.encodings.items()}
        item["labels"] = self.labels[index]
        return item


__all__ = ["GLUE", "TASKS", "DataError", "Example", "TaskSpec", "TaskSplits", "TokenizedDataset",
           "check_sources", "load_task"]
