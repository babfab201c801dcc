"""Trivial baselines on an evaluation set, scored with the same metrics: what a model must beat.

``python -m peftbench.tasks.extractive_qa.baselines squad ../shared/data/squad 400`` prints, for the first N
questions of each evaluation and test split the runs use: the empty answer, the context's first word, its first
sentence, and (the strongest) the context sentence sharing the most words with the question.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

from peftbench.tasks.extractive_qa import metrics
from peftbench.tasks.extractive_qa.sources import Example

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def _sentences(context: str) -> list[str]:
    return [s for s in _SENTENCE.split(context) if s.strip()] or [context]


def _overlap(example: Example) -> str:
    question = set(metrics.normalize_answer(example.question).split())
    return max(_sentences(example.context), key=lambda s: len(question & set(metrics.normalize_answer(s).split())))


BASELINES: dict[str, Callable[[Example], str]] = {
    "empty": lambda e: "",
    "first_word": lambda e: e.context.split()[0],
    "first_sentence": lambda e: _sentences(e.context)[0],
    "best_overlap_sentence": _overlap,
}


def score(examples: list[Example], version: str) -> dict[str, dict[str, float]]:
    golds = {e.id: e.answers for e in examples}
    results = {}
    for name, answer in BASELINES.items():
        predictions = {e.id: answer(e) for e in examples}
        if version == "1.1":
            results[name] = metrics.squad_v1(predictions, golds)
        else:  # a baseline has no null score: it answers empty exactly when its answer is empty
            na = {qid: 1.0 if not text else -1.0 for qid, text in predictions.items()}
            results[name] = metrics.squad_v2(predictions, golds, na)
    return results


def main(argv: list[str]) -> None:
    from peftbench.cli import compose_config
    from peftbench.config import validate
    from peftbench.tasks import family_for

    task_name, data_dir, count = argv[0], argv[1], int(argv[2]) if len(argv) > 2 else None
    task = validate(compose_config([f"task={task_name}", "model=tiny_bert"])).task
    splits = family_for(task).load(data_dir)
    for split, examples in {**splits.eval, **splits.test}.items():
        for name, values in score(examples[:count], str(task.source["version"])).items():
            shown = {k: round(v, 2) for k, v in values.items() if k in task.metrics and not k.endswith("thresh")}
            print(f"{task_name} {split}[:{count}] {name:>22}: {shown}")


if __name__ == "__main__":
    main(sys.argv[1:])
