"""Task definitions: where each GLUE task's text, labels and evaluation sets are, and how it is scored.

One table, so that the hub loader and the local-TSV loader cannot disagree about a task.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskSpec:
    name: str
    folder: str                      # GLUE folder name in a local data_dir (the layout of GLUE's zip files)
    text_fields: tuple[str, ...]     # hub column names, one or two sentences
    tsv_text: tuple[str | int, ...]  # the same columns in the original TSV (header names, or indices if no header)
    tsv_label: str | int
    tsv_header: bool
    labels: tuple[str, ...] | None   # class names in the hub's id order; None = regression
    eval_splits: dict[str, tuple[str, str]]  # our name -> (hub split, TSV file)
    metrics: tuple[str, ...]
    main_metric: str

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)

    @property
    def is_regression(self) -> bool:
        return self.labels is None


def _dev(file: str = "dev.tsv") -> dict[str, tuple[str, str]]:
    return {"validation": ("validation", file)}


GLUE: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec("cola", "CoLA", ("sentence",), (3,), 1, False, ("unacceptable", "acceptable"), _dev(),
                 ("matthews_correlation", "accuracy"), "matthews_correlation"),
        TaskSpec("sst2", "SST-2", ("sentence",), ("sentence",), "label", True, ("negative", "positive"), _dev(),
                 ("accuracy",), "accuracy"),
        TaskSpec("mrpc", "MRPC", ("sentence1", "sentence2"), ("#1 String", "#2 String"), "Quality", True,
                 ("not_equivalent", "equivalent"), _dev(), ("accuracy", "f1"), "accuracy"),
        TaskSpec("stsb", "STS-B", ("sentence1", "sentence2"), ("sentence1", "sentence2"), "score", True, None,
                 _dev(), ("pearson", "spearman", "correlation"), "correlation"),
        TaskSpec("qqp", "QQP", ("question1", "question2"), ("question1", "question2"), "is_duplicate", True,
                 ("not_duplicate", "duplicate"), _dev(), ("accuracy", "f1"), "accuracy"),
        TaskSpec("mnli", "MNLI", ("premise", "hypothesis"), ("sentence1", "sentence2"), "gold_label", True,
                 ("entailment", "neutral", "contradiction"),
                 {"validation": ("validation_matched", "dev_matched.tsv"),
                  "mismatched": ("validation_mismatched", "dev_mismatched.tsv")},
                 ("accuracy",), "accuracy"),
        TaskSpec("qnli", "QNLI", ("question", "sentence"), ("question", "sentence"), "label", True,
                 ("entailment", "not_entailment"), _dev(), ("accuracy",), "accuracy"),
        TaskSpec("rte", "RTE", ("sentence1", "sentence2"), ("sentence1", "sentence2"), "label", True,
                 ("entailment", "not_entailment"), _dev(), ("accuracy",), "accuracy"),
    )
}

ROTTEN_TOMATOES = TaskSpec(
    "rotten_tomatoes", "", ("text",), ("text",), "sentiment", True, ("negative", "positive"), _dev(),
    ("accuracy", "f1"), "accuracy",
)

TASKS: dict[str, TaskSpec] = {**GLUE, ROTTEN_TOMATOES.name: ROTTEN_TOMATOES}

# SoRA's evaluation protocol (Ding et al. 2023, Sec. 4.1): half of the dev set becomes the test set for these
# tasks; for the large ones, 1,000 training examples become the validation set and the dev set is the test set.
SORA_HALF_DEV = {"cola", "rte", "mrpc", "stsb", "mnli"}
SORA_TRAIN_HOLDOUT = {"qqp", "qnli", "sst2"}
SORA_HOLDOUT_SIZE = 1000
