"""SQuAD examples from the hub (``rajpurkar/squad``, ``rajpurkar/squad_v2``) or from the official JSON files.

The task's ``source`` block names the files under ``data_dir``: ``files.train`` (the official training file, or
null) and ``files.dev``. Without a training file (offline, only the dev files exist here) the dev file is split
by ARTICLE (title) with ``task.split_seed`` into train/validation/test (``source.article_split`` fractions), so no
context appears in two splits; the split is recorded in ``TaskSplits.info``.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peftbench.tasks.base import DataError, TaskSplits


@dataclass(frozen=True)
class Example:
    id: str
    title: str
    context: str
    question: str
    answers: tuple[str, ...]  # gold texts; empty for an unanswerable (v2.0) question
    starts: tuple[int, ...]  # character offsets of the answers in the context

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


def _files(task: Any) -> dict[str, str | None]:
    return dict(task.source.get("files") or {})


def _paths(task: Any, data_dir: str) -> dict[str, Path]:
    return {split: Path(data_dir) / name for split, name in _files(task).items() if name}


def check_sources(task: Any, data_dir: str | None) -> None:
    """Local files exist and have SQuAD's structure (``data`` -> ``paragraphs`` -> ``qas``); no network."""
    if data_dir is None:
        return
    if not Path(data_dir).is_dir():
        names = [name for name in _files(task).values() if name]
        raise DataError(f"data_dir={data_dir}: no such folder (expected the SQuAD JSON files {names})")
    for path in _paths(task, data_dir).values():
        read_json(path, version=str(task.source["version"]))


def read_json(path: Path, version: str) -> list[Example]:
    """Examples of one official SQuAD JSON file; one-line :class:`DataError` on a malformed file."""
    if not path.is_file():
        raise DataError(f"{path}: no such file (task.source.files names it)")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a JSON file ({str(error).splitlines()[0]})") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise DataError(f"{path}: no `data` list: not an official SQuAD file")
    examples = []
    for position, article in enumerate(document["data"]):
        title = str(article.get("title", f"article {position}")) if isinstance(article, dict) else ""
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise DataError(f"{path}: article {title!r} has no `paragraphs` list")
        for paragraph in paragraphs:
            if not isinstance(paragraph, dict) or "context" not in paragraph or not isinstance(paragraph.get("qas"),
                                                                                              list):
                raise DataError(f"{path}: article {title!r} has a paragraph without `context` and `qas`")
            for qa in paragraph["qas"]:
                examples.append(_example(path, title, paragraph["context"], qa, version))
    if not examples:
        raise DataError(f"{path}: no questions (`qas`) in `data`")
    return examples


def _example(path: Path, title: str, context: str, qa: Any, version: str) -> Example:
    if not isinstance(qa, dict) or not {"id", "question", "answers"} <= set(qa):
        raise DataError(f"{path}: article {title!r} has a question without `id`, `question` and `answers`")
    impossible = bool(qa.get("is_impossible", False))
    if impossible and version != "2.0":
        raise DataError(f"{path}: question {qa['id']} (article {title!r}) is unanswerable, which only SQuAD v2.0 "
                        "allows; use task=squad_v2")
    answers = [] if impossible else list(qa["answers"])
    if not answers and version != "2.0":
        raise DataError(f"{path}: question {qa['id']} (article {title!r}) has no answer")
    for answer in answers:
        text, start = answer.get("text"), answer.get("answer_start")
        if not isinstance(text, str) or not isinstance(start, int) or context[start:start + len(text)] != text:
            raise DataError(f"{path}: question {qa['id']} (article {title!r}): answer {text!r} does not occur at "
                            f"answer_start={start} of its context")
    return Example(id=str(qa["id"]), title=title, context=context, question=qa["question"],
                   answers=tuple(a["text"] for a in answers), starts=tuple(a["answer_start"] for a in answers))


def split_by_article(examples: list[Example], fractions: list[float], seed: int
                     ) -> tuple[dict[str, list[Example]], dict[str, list[str]]]:
    """Seeded train/validation/test split of whole articles (titles in file order, shuffled)."""
    titles = list(dict.fromkeys(e.title for e in examples))
    random.Random(seed).shuffle(titles)
    n_validation = max(1, round(fractions[1] * len(titles)))
    n_test = round(fractions[2] * len(titles))
    if len(titles) - n_validation - n_test < 1:
        raise DataError(f"{len(titles)} articles cannot be split {fractions} into non-empty train and validation")
    chosen = {"validation": titles[:n_validation], "test": titles[n_validation:n_validation + n_test],
              "train": titles[n_validation + n_test:]}
    where = {title: split for split, group in chosen.items() for title in group}
    parts: dict[str, list[Example]] = {split: [] for split in chosen}
    for example in examples:
        parts[where[example.title]].append(example)
    return parts, chosen


def load_local(task: Any, data_dir: str) -> TaskSplits:
    check_sources(task, data_dir)
    paths, version = _paths(task, data_dir), str(task.source["version"])
    if "dev" not in paths:
        raise DataError(f"task {task.name}: task.source.files.dev names no file")
    dev = read_json(paths["dev"], version)
    if "train" in paths:
        return TaskSplits(read_json(paths["train"], version), {"validation": dev},
                          info={"source": str(paths["dev"].parent), "protocol": "official dev",
                                "files": {k: p.name for k, p in paths.items()}})
    fractions = list(task.source.get("article_split") or (0.8, 0.1, 0.1))
    parts, titles = split_by_article(dev, fractions, task.split_seed)
    info = {"source": str(paths["dev"]), "protocol": "article_split", "split_seed": task.split_seed,
            "fractions": fractions, "articles": {k: len(v) for k, v in titles.items()},
            "titles": {k: sorted(v) for k, v in titles.items() if k != "train"}}
    test = {"test": parts["test"]} if parts["test"] else {}
    return TaskSplits(parts["train"], {"validation": parts["validation"]}, test, info)


def load_hub(task: Any) -> TaskSplits:
    import datasets  # imported here: only hub runs need it

    dataset = datasets.load_dataset(task.hub_id)

    def examples(split: str) -> list[Example]:
        return [Example(id=row["id"], title=row["title"], context=row["context"], question=row["question"],
                        answers=tuple(row["answers"]["text"]), starts=tuple(row["answers"]["answer_start"]))
                for row in dataset[split]]

    return TaskSplits(examples("train"), {"validation": examples("validation")},
                      info={"source": f"hub:{task.hub_id}", "protocol": "official dev"})


def load_examples(task: Any, data_dir: str | None) -> TaskSplits:
    splits = load_local(task, data_dir) if data_dir is not None else load_hub(task)
    held_out = {**splits.eval, **splits.test}
    splits.info["sizes"] = {"train": len(splits.train), **{name: len(rows) for name, rows in held_out.items()}}
    splits.info["unanswerable"] = {"train": sum(not e.answerable for e in splits.train),
                                   **{n: sum(not e.answerable for e in rows) for n, rows in held_out.items()}}
    return splits
