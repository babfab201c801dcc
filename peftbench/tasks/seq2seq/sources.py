"""Summarization pairs from the hub (``datasets.load_dataset``) or from local JSON-lines files.

The task's ``source`` block names the fields (XSum ``document``/``summary``, CNN/DM ``article``/``highlights``),
the hub config and the local files. Local layout: ``<data_dir>/<source.folder>/<file>`` with one file per split
(``source.files``), or, with ``task.options.split_from: <file>``, one file split by document into
train/validation/test with ``task.split_seed`` (offline: the 1,000 real XSum pairs in shared/data).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peftbench.tasks.base import DataError, TaskSplits

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Example:
    source: str
    target: str
    id: str = ""


def folder_of(task: Any, data_dir: str | Path) -> Path:
    folder = Path(data_dir) / task.source["folder"]
    if not folder.is_dir():
        raise DataError(f"data_dir={data_dir}: no folder {task.source['folder']}/ for task {task.name} "
                        f"(expected <data_dir>/{task.source['folder']}/<split>.jsonl)")
    return folder


def needed_files(task: Any) -> dict[str, str]:
    """Split name -> file name; ``options.split_from`` replaces the three files by one."""
    split_from = task.options.get("split_from")
    if split_from:
        return {"all": split_from}
    return {split: task.source["files"][split] for split in SPLITS}


def check_sources(task: Any, data_dir: str | None) -> None:
    """Before weights load: every local file exists and its first row has the task's fields."""
    if data_dir is None:
        return
    folder = folder_of(task, data_dir)
    for name in needed_files(task).values():
        path = folder / name
        if not path.is_file():
            raise DataError(f"data_dir={data_dir}: {path} is missing (task {task.name})")
        with open(path, encoding="utf-8") as handle:
            first = next((line for line in handle if line.strip()), None)
        if first is None:
            raise DataError(f"{path}: empty file")
        _row(first, path, 1, task.source)


def _row(line: str, path: Path, number: int, source: dict[str, Any]) -> Example:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}:{number}: not a JSON line ({error.msg})") from None
    fields = (source["source_field"], source["target_field"])
    if not isinstance(row, dict) or any(not isinstance(row.get(f), str) for f in fields):
        keys = sorted(row) if isinstance(row, dict) else type(row).__name__
        raise DataError(f"{path}:{number}: needs string fields {list(fields)}; found {keys}")
    return Example(row[fields[0]], row[fields[1]], str(row.get("id", number)))


def read_jsonl(path: Path, source: dict[str, Any]) -> list[Example]:
    with open(path, encoding="utf-8") as handle:
        return [_row(line, path, number, source) for number, line in enumerate(handle, 1) if line.strip()]


def split_by_document(examples: list[Example], sizes: dict[str, int], seed: int) -> dict[str, list[Example]]:
    """Seeded split into train/validation/test in which no document text appears in two splits (repeated
    documents stay together). ``sizes`` gives validation and test sizes in documents; the rest is train."""
    groups: dict[str, list[Example]] = {}
    for example in examples:
        groups.setdefault(hashlib.sha1(example.source.encode()).hexdigest(), []).append(example)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    n_val, n_test = sizes["validation"], sizes["test"]
    if n_val + n_test >= len(keys):
        raise DataError(f"task.options.split_sizes: {n_val} + {n_test} documents leave none of {len(keys)} to train")
    parts = {"validation": keys[:n_val], "test": keys[n_val:n_val + n_test], "train": keys[n_val + n_test:]}
    return {name: [e for k in part for e in groups[k]] for name, part in parts.items()}


def load_local(task: Any, data_dir: str) -> TaskSplits:
    check_sources(task, data_dir)
    folder = folder_of(task, data_dir)
    split_from = task.options.get("split_from")
    if split_from:
        path = folder / split_from
        splits = split_by_document(read_jsonl(path, task.source), task.options["split_sizes"], task.split_seed)
        info = {"source": str(path), "split": "by document", "split_seed": task.split_seed,
                "split_ids": {name: [e.id for e in rows] for name, rows in splits.items() if name != "train"}}
    else:
        splits = {split: read_jsonl(folder / task.source["files"][split], task.source) for split in SPLITS}
        info = {"source": str(folder)}
    return TaskSplits(splits["train"], {"validation": splits["validation"]}, {"test": splits["test"]}, info)


def load_hub(task: Any) -> TaskSplits:
    import datasets  # imported here: only hub runs need it

    dataset = datasets.load_dataset(task.hub_id, task.source.get("hub_name"))
    fields = (task.source["source_field"], task.source["target_field"])

    def examples(split: str) -> list[Example]:
        return [Example(row[fields[0]], row[fields[1]], str(row.get("id", i))) for i, row in enumerate(dataset[split])]

    info = {"source": f"hub:{task.hub_id}" + (f"/{task.source['hub_name']}" if task.source.get("hub_name") else "")}
    return TaskSplits(examples("train"), {"validation": examples("validation")}, {"test": examples("test")}, info)


def load_examples(task: Any, data_dir: str | None) -> TaskSplits:
    splits = load_local(task, data_dir) if data_dir is not None else load_hub(task)
    splits.info.setdefault("protocol", task.protocol)
    held_out = {**splits.eval, **splits.test}
    splits.info["sizes"] = {"train": len(splits.train), **{name: len(rows) for name, rows in held_out.items()}}
    return splits
