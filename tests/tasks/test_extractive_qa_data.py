"""SQuAD readers: the official files, the seeded by-article split, one-line errors on malformed files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import ROOT, compose

from peftbench.config import ConfigError, validate
from peftbench.tasks import family_for
from peftbench.tasks.base import DataError

SQUAD_DIR = ROOT.parent / "shared" / "data" / "squad"


@pytest.fixture
def squad_dir() -> Path:
    if not (SQUAD_DIR / "dev-v1.1.json").is_file():
        pytest.skip(f"real SQuAD files not found at {SQUAD_DIR}")
    return SQUAD_DIR


def family(*overrides: str):
    return family_for(validate(compose(["model=tiny_bert", *overrides])).task)


def write_squad(path: Path, articles: list[dict], version: str = "1.1") -> Path:
    path.write_text(json.dumps({"version": version, "data": articles}))
    return path


def article(title: str, context: str, qas: list[dict]) -> dict:
    return {"title": title, "paragraphs": [{"context": context, "qas": qas}]}


def test_real_files_split_by_article(squad_dir) -> None:
    splits = family("task=squad").load(str(squad_dir))
    assert splits.info["sizes"] == {"train": 8147, "validation": 1133, "test": 1290}  # 10,570 questions
    assert splits.info["articles"] == {"validation": 5, "test": 5, "train": 38} and splits.info["split_seed"] == 42
    titles = [{e.title for e in rows} for rows in (splits.train, splits.eval["validation"], splits.test["test"])]
    assert not (titles[0] & titles[1] or titles[0] & titles[2] or titles[1] & titles[2])
    assert sorted(titles[1]) == splits.info["titles"]["validation"]
    assert family("task=squad", "task.split_seed=1").load(str(squad_dir)).info["titles"] != splits.info["titles"]
    v2 = family("task=squad_v2").load(str(squad_dir))
    assert sum(v2.info["sizes"].values()) == 6078 and sum(v2.info["unanswerable"].values()) == 3168
    assert all(e.answers == () for e in v2.train if not e.answerable)


def test_malformed_files_fail_with_one_line(tmp_path) -> None:
    qa = family("task=squad", "task.source.files.dev=dev.json")
    write_squad(tmp_path / "dev.json", [])
    (tmp_path / "dev.json").write_text(json.dumps({"version": "1.1"}))
    with pytest.raises(DataError, match=r"dev.json: no `data` list"):
        qa.check_sources(str(tmp_path))
    (tmp_path / "dev.json").write_text(json.dumps({"data": [{"title": "T", "paragraphs": [{"context": "c"}]}]}))
    with pytest.raises(DataError, match=r"article 'T' has a paragraph without `context` and `qas`"):
        qa.check_sources(str(tmp_path))
    write_squad(tmp_path / "dev.json", [article("Normans", "The Normans lived in Normandy.", [
        {"id": "q7", "question": "Where?", "answers": [{"text": "Normandy", "answer_start": 3}]}])])
    with pytest.raises(DataError) as error:
        qa.check_sources(str(tmp_path))
    message = str(error.value)
    assert "dev.json" in message and "q7" in message and "Normans" in message and "\n" not in message
    with pytest.raises(DataError, match=r"no such file"):
        family("task=squad", "task.source.files.dev=absent.json").check_sources(str(tmp_path))
    with pytest.raises(DataError, match=r"no such folder"):
        qa.check_sources(str(tmp_path / "nowhere"))


def test_unanswerable_question_needs_v2(tmp_path) -> None:
    write_squad(tmp_path / "dev.json", [article("A", "text", [
        {"id": "q1", "question": "?", "answers": [], "is_impossible": True}])])
    with pytest.raises(DataError, match=r"q1 .*only SQuAD v2.0"):
        family("task=squad", "task.source.files.dev=dev.json").check_sources(str(tmp_path))
    family("task=squad_v2", "task.source.files.dev=dev.json").check_sources(str(tmp_path))


@pytest.mark.parametrize(("override", "message"), [
    ("++task.options.stride=3", "task.options: unknown key"),
    ("task.options.doc_stride=384", "doc_stride=384 must be smaller than task.max_length=384"),
    ("task.options.n_best=0", "task.options.n_best must be an integer >= 1"),
    ("task.source.version=3", "task.source.version"),
    ("task.metrics=[accuracy]", "not SQuAD v1.1 metrics"),
    ("task.options.pad_to_max_length=yes", "task.options.pad_to_max_length must be true or false, got 'yes'"),
])
def test_config_errors_are_one_line(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(compose(["model=tiny_bert", "task=squad", "task.main_metric=accuracy"
                          if override.startswith("task.metrics") else "seed=0", override]))
