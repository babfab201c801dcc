"""Sentence and sentence-pair classification and regression (GLUE, Rotten Tomatoes): one feature per example,
the label head of ``AutoModelForSequenceClassification``, argmax (or the regression score) as the prediction."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from transformers import DataCollatorWithPadding

from peftbench.batching import in_dataset_order
from peftbench.tasks.base import TaskFamily, TaskSplits
from peftbench.tasks.classification import sources
from peftbench.tasks.classification.metrics import compute_metrics


class TokenizedDataset(Dataset):
    """Examples tokenised once, padded per batch by the collator."""

    def __init__(self, examples: list[sources.Example], tokenizer: Any, max_length: int, regression: bool) -> None:
        columns = list(zip(*(e.texts for e in examples), strict=True)) if examples else []
        pair = len(columns) == 2
        # Plain lists: the per-row Encoding objects a fast tokenizer adds would make the cached copy slow to read
        self.encodings = dict(tokenizer(list(columns[0]), list(columns[1]) if pair else None, truncation=True,
                                        max_length=max_length))
        dtype = torch.float if regression else torch.long
        self.labels = torch.tensor([e.label for e in examples], dtype=dtype)

    def __len__(self) -> int:
        return len(self.labels)

    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.encodings["input_ids"]]

    # The labels travel to the tokenized-data cache as a numpy array: the first tensor unpickled in a process
    # costs about half a second (torch.load's machinery), more than reading the whole entry.
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "labels": self.labels.numpy()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, labels=torch.from_numpy(state["labels"]))

    def __getitem__(self, index: int) -> dict:
        item = {key: values[index] for key, values in self.encodings.items()}
        item["labels"] = self.labels[index]
        return item


class Classification(TaskFamily):
    name = "classification"
    model_class = "AutoModelForSequenceClassification"

    @property
    def regression(self) -> bool:
        return self.task.source.get("labels") is None

    def check_config(self) -> None:
        if self.task.protocol == "sora" and not self.task.source.get("sora_split"):
            raise ValueError(f"task.protocol=sora: SoRA's splits are defined for the GLUE tasks only, not "
                             f"{self.task.name}; use task.protocol=adalora")
        if self.task.source.get("reader") not in ("glue", "rotten_tomatoes"):
            raise ValueError(f"task.source.reader: {self.task.source.get('reader')!r}; allowed ['glue', "
                             "'rotten_tomatoes']")

    def check_sources(self, data_dir: str | None) -> None:
        sources.check_sources(self.task, data_dir)

    def train_size(self, data_dir: str | None) -> int | None:
        return sources.train_size(self.task, data_dir)

    def load(self, data_dir: str | None) -> TaskSplits:
        return sources.load_examples(self.task, data_dir)

    def num_labels(self) -> int:
        return 1 if self.regression else len(self.task.source["labels"])

    def synthetic_targets(self, batch_size: int, length: int) -> dict[str, Any]:
        labels = torch.rand(batch_size) if self.regression else torch.randint(0, self.num_labels(), (batch_size,))
        return {"labels": labels}

    def featurize(self, examples: list[sources.Example], tokenizer: Any) -> TokenizedDataset:
        return TokenizedDataset(examples, tokenizer, self.task.max_length, self.regression)

    def collator(self, tokenizer: Any) -> DataCollatorWithPadding:
        return DataCollatorWithPadding(tokenizer)

    @torch.no_grad()
    def predict(self, model: Any, loader: Any, accelerator: Any, method: Any, *,
                final: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Class ids (or regression scores) and labels, gathered from every process, in dataset order."""
        model.eval()
        predictions, labels = [], []
        for batch in loader:
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            inputs = method.prepare_inputs(accelerator.unwrap_model(model), inputs)
            logits = model(**inputs).logits
            scores = logits.squeeze(-1) if self.regression else logits.argmax(-1)
            scores, targets = accelerator.gather_for_metrics((scores, batch["labels"]))
            predictions.append(scores.float().cpu())
            labels.append(targets.float().cpu())
        model.train()
        return (np.array(in_dataset_order(loader.dataset, torch.cat(predictions).numpy())),
                np.array(in_dataset_order(loader.dataset, torch.cat(labels).numpy())))

    def score(self, predictions: tuple[np.ndarray, np.ndarray], dataset: Any) -> dict[str, float]:
        scores, labels = predictions
        if not self.regression:
            scores, labels = scores.astype(int), labels.astype(int)
        return compute_metrics(self.task.metrics, scores, labels)
