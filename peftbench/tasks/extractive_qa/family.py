"""Extractive QA family: SQuAD v1.1 and v2.0 on ``AutoModelForQuestionAnswering`` (start/end logits, the
``qa_outputs`` head). Features are windows of the context (``features``), predictions are gathered logits per
feature, scoring maps features back to examples (``postprocess``) and applies the official metrics (``metrics``).

Knobs in ``task.options`` (checked in :meth:`check_config`): ``doc_stride`` (overlap of consecutive windows,
tokens), ``n_best`` (start and end candidates per feature), ``max_answer_length`` (tokens),
``null_threshold`` (v2.0: a question is answered empty when null score - best span score exceeds it),
``pad_to_max_length`` (pad every window to ``task.max_length``, as AdaLoRA's released ``run_qa.py`` does by default;
the start/end losses of Hugging Face's QA heads take a softmax over every position, padding included, so with
dynamic padding the loss of a window depends on the batch it lands in, and with it the run on length grouping
and on the number of processes).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from peftbench.batching import base_dataset
from peftbench.tasks.base import TaskFamily, TaskSplits
from peftbench.tasks.extractive_qa import features, metrics, sources
from peftbench.tasks.extractive_qa.postprocess import answer_example

OPTIONS: dict[str, Any] = {"doc_stride": 128, "n_best": 20, "max_answer_length": 30, "null_threshold": 0.0,
                           "pad_to_max_length": True}
VERSIONS = ("1.1", "2.0")
METRICS = {
    "1.1": ("exact_match", "f1"),
    "2.0": ("exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total", "NoAns_exact", "NoAns_f1",
            "NoAns_total", "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"),
}
PAD_LOGIT = -1e4  # fills logits padded across processes; trimmed away before post-processing


class ExtractiveQA(TaskFamily):
    name = "extractive_qa"
    model_class = "AutoModelForQuestionAnswering"

    def synthetic_targets(self, batch_size: int, length: int) -> dict[str, Any]:
        start = torch.randint(0, length, (batch_size,))
        return {"start_positions": start, "end_positions": torch.minimum(start + 2, torch.tensor(length - 1))}

    @property
    def version(self) -> str:
        return str(self.task.source.get("version"))

    @property
    def options(self) -> dict[str, Any]:
        return {**OPTIONS, **(self.task.options or {})}

    def check_config(self) -> None:
        if self.version not in VERSIONS:
            raise ValueError(f"task.source.version: {self.version!r}; allowed {list(VERSIONS)}")
        unknown = sorted(set(self.task.options or {}) - set(OPTIONS))
        if unknown:
            raise ValueError(f"task.options: unknown key(s) {unknown} for extractive_qa; allowed {sorted(OPTIONS)}")
        options = self.options
        for key in ("doc_stride", "n_best", "max_answer_length"):
            value = options[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "doc_stride" else 1):
                least = 0 if key == "doc_stride" else 1
                raise ValueError(f"task.options.{key} must be an integer >= {least}, got {value!r}")
        if options["doc_stride"] >= self.task.max_length:
            raise ValueError(f"task.options.doc_stride={options['doc_stride']} must be smaller than "
                             f"task.max_length={self.task.max_length}")
        if not isinstance(options["pad_to_max_length"], bool):
            raise ValueError(f"task.options.pad_to_max_length must be true or false, got "
                             f"{options['pad_to_max_length']!r}")
        if isinstance(options["null_threshold"], bool) or not isinstance(options["null_threshold"], int | float):
            raise ValueError(f"task.options.null_threshold must be a number, got {options['null_threshold']!r}")
        unknown_metrics = [m for m in self.task.metrics if m not in METRICS[self.version]]
        if unknown_metrics:
            raise ValueError(f"task.metrics: {unknown_metrics} are not SQuAD v{self.version} metrics; allowed "
                             f"{list(METRICS[self.version])}")
        files = self.task.source.get("files") or {}
        if not files.get("dev"):
            raise ValueError("task.source.files.dev: names no SQuAD JSON file (read from data_dir)")
        fractions = self.task.source.get("article_split") or [0.8, 0.1, 0.1]
        if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
            raise ValueError(f"task.source.article_split: {fractions} are not three fractions summing to 1")

    def check_sources(self, data_dir: str | None) -> None:
        sources.check_sources(self.task, data_dir)

    def load(self, data_dir: str | None) -> TaskSplits:
        return sources.load_examples(self.task, data_dir)

    def featurize(self, examples: list[sources.Example], tokenizer: Any) -> features.QAFeatures:
        return features.featurize(examples, tokenizer, self.task.max_length, self.options["doc_stride"])

    def collator(self, tokenizer: Any) -> features.Collator:
        return features.Collator(tokenizer, self.padded_length())

    def padded_length(self) -> int | None:
        return self.task.max_length if self.options["pad_to_max_length"] else None

    @torch.no_grad()
    def predict(self, model: Any, loader: Any, accelerator: Any, method: Any, *,
                final: bool = False) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Start and end logits of every feature, by feature id, gathered from every process without the
        duplicates of the padded last batch. The ``method.virtual_tokens()`` positions a method inserted (from
        ``method.virtual_token_position()`` on) are dropped, so position i is token i of the feature's own input."""
        model.eval()
        unwrapped = accelerator.unwrap_model(model)
        skip, at = method.virtual_tokens(), method.virtual_token_position()
        dataset = base_dataset(loader.dataset)
        gathered: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        with dataset.with_feature_ids():
            for batch in loader:
                ids = batch["feature_index"]
                inputs = {k: v for k, v in batch.items()
                          if k not in ("feature_index", "start_positions", "end_positions")}
                outputs = model(**method.prepare_inputs(unwrapped, inputs))
                start = _without(outputs.start_logits, at, skip).float().contiguous()
                end = _without(outputs.end_logits, at, skip).float().contiguous()
                start = accelerator.pad_across_processes(start, dim=1, pad_index=PAD_LOGIT)
                end = accelerator.pad_across_processes(end, dim=1, pad_index=PAD_LOGIT)
                start, end, ids = accelerator.gather_for_metrics((start, end, ids))
                for row, feature in enumerate(ids.tolist()):
                    length = dataset.length(feature)
                    gathered[feature] = (start[row, :length].cpu().numpy(), end[row, :length].cpu().numpy())
        model.train()
        if len(gathered) != len(loader.dataset):  # every feature exactly once, whatever the number of processes
            raise RuntimeError(f"predict gathered {len(gathered)} features for a set of {len(loader.dataset)}")
        return gathered

    def answers(self, predictions: dict[int, tuple[np.ndarray, np.ndarray]], dataset: Any) -> dict[str, Any]:
        """The post-processed answer of every example that has at least one predicted feature, by question id."""
        base = base_dataset(dataset)
        by_example: dict[int, list] = {}
        for feature in sorted(predictions):
            start, end = predictions[feature]
            by_example.setdefault(base.example_index[feature], []).append(
                (start, end, base.offsets[feature], base.cls_index[feature]))
        options = self.options
        return {base.examples[i].id: answer_example(base.examples[i].context, windows, options["n_best"],
                                                    options["max_answer_length"])
                for i, windows in sorted(by_example.items())}

    def score(self, predictions: dict[int, tuple[np.ndarray, np.ndarray]], dataset: Any) -> dict[str, float]:
        base = base_dataset(dataset)
        answers = self.answers(predictions, dataset)
        golds = {e.id: e.answers for e in base.examples if e.id in answers}
        texts = {qid: a.text for qid, a in answers.items()}
        if self.version == "1.1":
            result = metrics.squad_v1(texts, golds)
        else:
            result = metrics.squad_v2(texts, golds, {qid: a.null_diff for qid, a in answers.items()},
                                      threshold=float(self.options["null_threshold"]))
        return {name: result[name] for name in self.task.metrics}


def _without(logits: Any, at: int, count: int) -> Any:
    """Logits (batch, positions) without the ``count`` virtual positions inserted at ``at``."""
    return torch.cat([logits[:, :at], logits[:, at + count:]], dim=1) if count else logits
