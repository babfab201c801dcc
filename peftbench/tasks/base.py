"""What a task family owns, and the one contract the loop uses to evaluate any task.

A family plays the role of lm-evaluation-harness's output type: it decides what the model is asked and how the
answer is scored. The loop and the recipes call, for any task::

    family = peftbench.tasks.family_for(run.task)
    family.check_sources(data_dir)               # before weights load: local files exist, no network
    family.train_size(data_dir)                  # before weights load: examples per epoch (None: unknown)
    splits = family.load(data_dir)               # examples: train, eval sets (choose the best step), test sets
    dataset = family.featurize(examples, tokenizer)   # one example may become several features
    order = family.evaluation_order(dataset)      # longest first; predict puts predictions back in order
    loader = DataLoader(LengthSorted(dataset, order), collate_fn=family.collator(tokenizer))
    model_class = family.model_class             # transformers AutoModelFor... name
    predictions = family.predict(model, loader, accelerator, method)  # gathered over N processes
    metrics = family.score(predictions, dataset) # per-example results aggregated to corpus metrics

The direction of every metric comes from :mod:`peftbench.tasks.catalog`; :meth:`TaskFamily.better` uses it to
choose the best checkpoint.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from peftbench.tasks.catalog import metric


class DataError(ValueError):
    """A dataset path or file is missing or malformed."""


@dataclass
class TaskSplits:
    train: list[Any]
    eval: dict[str, list[Any]]  # "validation" (+ "mismatched" for MNLI): chooses the best step
    test: dict[str, list[Any]] = field(default_factory=dict)  # labelled held-out sets, scored at the end
    info: dict[str, Any] = field(default_factory=dict)  # provenance, recorded in run.json


class TaskFamily(ABC):
    """One way of asking a model and scoring it; a task config (``run.task``) selects the data."""

    name: ClassVar[str]
    model_class: ClassVar[str]  # e.g. "AutoModelForSequenceClassification"

    def __init__(self, task: Any) -> None:
        self.task = task

    def check_config(self) -> None:
        """Config-only checks (no files, no network); raise ``ValueError`` with one line."""

    @abstractmethod
    def check_sources(self, data_dir: str | None) -> None:
        """Fail with :class:`DataError` before any model loads when a local source is missing."""

    def train_size(self, data_dir: str | None) -> int | None:
        """The number of training examples (before ``task.max_train_samples``) without loading a model, so that
        schedules can be checked against the run's total steps before weights load; None when unknown without
        the network (then those checks are skipped). A family that reads local files may check every row here."""
        return None

    @abstractmethod
    def load(self, data_dir: str | None) -> TaskSplits:
        """The task's examples from the hub or from local files."""

    def num_labels(self) -> int | None:
        """Output size of the head the model class needs (None when the family has no label head)."""
        return None

    @abstractmethod
    def featurize(self, examples: list[Any], tokenizer: Any) -> Any:
        """A torch Dataset of model inputs (and labels) for ``examples``."""

    @abstractmethod
    def collator(self, tokenizer: Any) -> Any:
        """Batches features (dynamic padding, unless :meth:`padded_length` says otherwise)."""

    def padded_length(self) -> int | None:
        """The length every batch is padded to when the family pads to a fixed length (``None``: to the batch's
        longest input); the padding fractions in a run's ``cost`` are computed with it."""
        return None

    def evaluation_order(self, dataset: Any) -> list[int]:
        """The order in which a held-out set is evaluated: longest input first, so that batches pad little.
        ``predict`` receives the set wrapped in :class:`peftbench.batching.LengthSorted` and returns its
        predictions in dataset order (:func:`peftbench.batching.in_dataset_order`)."""
        from peftbench.batching import length_order, lengths_of

        return length_order(lengths_of(dataset))

    @abstractmethod
    def predict(self, model: Any, loader: Any, accelerator: Any, method: Any, *, final: bool = False) -> Any:
        """Run the model over ``loader`` on every process and gather the predictions without duplicates.
        ``method.prepare_inputs(accelerator.unwrap_model(model), batch)`` goes right before every forward or
        generate call. ``final`` is true for the run's last evaluation and the test sets: a family whose full
        evaluation is expensive (beam search) may do less before that."""

    @abstractmethod
    def score(self, predictions: Any, dataset: Any) -> dict[str, float]:
        """Corpus metrics named in ``task.metrics`` from gathered predictions."""

    def synthetic_batch(self, batch_size: int, length: int, vocab_size: int) -> dict[str, Any]:
        """A random batch of model inputs with this family's targets (tests and throughput benchmarks need no
        data): token ids, a full attention mask, and the labels ``model_class`` expects."""
        import torch

        ids = torch.randint(5, vocab_size, (batch_size, length))
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), **self.synthetic_targets(batch_size, length)}

    def synthetic_targets(self, batch_size: int, length: int) -> dict[str, Any]:
        raise TypeError(f"task family {self.name} defines no synthetic targets (override synthetic_targets)")

    def evaluate(self, model: Any, loader: Any, accelerator: Any, method: Any, *, final: bool = False
                 ) -> dict[str, float]:
        return self.score(self.predict(model, loader, accelerator, method, final=final), loader.dataset)

    def better(self, candidate: dict[str, float], incumbent: dict[str, float]) -> bool:
        """Whether ``candidate`` beats ``incumbent`` on the main metric, in that metric's direction."""
        main = self.task.main_metric
        if metric(main).higher_is_better:
            return candidate[main] > incumbent[main]
        return candidate[main] < incumbent[main]
