"""Seq2seq family, without models: config checks, local sources, the offline by-document split."""

from __future__ import annotations

import json

import pytest
from support import ROOT, compose

from peftbench import tasks
from peftbench.config import ConfigError, validate
from peftbench.tasks.base import DataError

SUMMARIZATION = ROOT.parent / "shared" / "data" / "summarization"


def task_config(*extra: str):
    return validate(compose(["task=xsum", "model=tiny_bart", *extra])).task


@pytest.mark.parametrize(("override", "message"), [
    ("task.options.num_beams=0", "task.options.num_beams must be a positive integer"),
    ("task.options.max_source_length=-1", "task.options.max_source_length must be a positive integer"),
    ("task.options.max_target_length=0", "task.options.max_target_length must be a positive integer"),
    ("++task.options.beams=4", "task.options: unknown key(s) ['beams']"),
    ("task.options.eval_generate_examples=-1", "task.options.eval_generate_examples must be a non-negative"),
    ("task.options.min_length=100", "task.options.min_length=100 exceeds the generation length 64"),
])
def test_impossible_options_fail_in_one_line(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        validate(compose(["task=xsum", "model=tiny_bart", override]))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_task_options_carry_the_papers_settings() -> None:
    xsum, cnn = (tasks.family_for(task_config(f"task={name}")) for name in ("xsum", "cnn_dailymail"))
    assert (xsum.options["max_source_length"], xsum.options["max_target_length"], xsum.options["num_beams"]) == \
        (768, 64, 8)
    assert (cnn.options["max_source_length"], cnn.options["max_target_length"], cnn.options["num_beams"]) == \
        (1024, 160, 4)
    assert xsum.model_class == "AutoModelForSeq2SeqLM" and xsum.task.main_metric == "loss"
    assert not xsum.better({"loss": 2.0}, {"loss": 1.0}) and xsum.better({"loss": 1.0}, {"loss": 2.0})


def write_jsonl(path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_missing_files_and_fields_fail_before_loading(tmp_path) -> None:
    family = tasks.family_for(task_config())
    with pytest.raises(DataError, match="no folder xsum/"):
        family.check_sources(str(tmp_path))
    rows = [{"document": "A text.", "summary": "A."}]
    write_jsonl(tmp_path / "xsum" / "train.jsonl", rows)
    write_jsonl(tmp_path / "xsum" / "validation.jsonl", rows)
    with pytest.raises(DataError, match="test.jsonl is missing"):
        family.check_sources(str(tmp_path))
    write_jsonl(tmp_path / "xsum" / "test.jsonl", [{"article": "A text.", "highlights": "A."}])
    with pytest.raises(DataError, match=r"test.jsonl:1: needs string fields \['document', 'summary'\]"):
        family.check_sources(str(tmp_path))
    cnn = tasks.family_for(task_config("task=cnn_dailymail"))
    write_jsonl(tmp_path / "cnn_dailymail" / "train.jsonl", rows)
    with pytest.raises(DataError, match=r"needs string fields \['article', 'highlights'\]"):
        cnn.check_sources(str(tmp_path))


def test_local_files_load_per_split(tmp_path) -> None:
    for split, n in (("train", 3), ("validation", 2), ("test", 1)):
        write_jsonl(tmp_path / "cnn_dailymail" / f"{split}.jsonl",
                    [{"article": f"{split} {i}.", "highlights": f"h{i}.\nh{i + 1}.", "id": f"{split}{i}"}
                     for i in range(n)])
    splits = tasks.family_for(task_config("task=cnn_dailymail")).load(str(tmp_path))
    assert splits.info["sizes"] == {"train": 3, "validation": 2, "test": 1}
    assert splits.eval["validation"][1].target == "h1.\nh2." and splits.test["test"][0].id == "test0"


@pytest.fixture
def summarization_dir():
    if not (SUMMARIZATION / "xsum" / "test.jsonl").is_file():
        pytest.skip(f"real XSum rows not found at {SUMMARIZATION}")
    return SUMMARIZATION


def test_one_file_is_split_by_document_with_the_seed(summarization_dir) -> None:
    family = tasks.family_for(task_config("task.options.split_from=test.jsonl"))
    family.check_sources(str(summarization_dir))
    splits = family.load(str(summarization_dir))
    assert splits.info["sizes"] == {"train": 800, "validation": 100, "test": 100}
    documents = [{e.source for e in rows} for rows in (splits.train, splits.eval["validation"], splits.test["test"])]
    assert not (documents[0] & documents[1] or documents[0] & documents[2] or documents[1] & documents[2])
    assert splits.info["split_ids"]["validation"] == [e.id for e in splits.eval["validation"]]
    again = family.load(str(summarization_dir))
    assert [e.id for e in again.test["test"]] == [e.id for e in splits.test["test"]]
    other = tasks.family_for(task_config("task.options.split_from=test.jsonl", "task.split_seed=1"))
    assert [e.id for e in other.load(str(summarization_dir)).test["test"]] != [e.id for e in splits.test["test"]]


def test_a_backbone_without_seq2seq_roles_fails_before_weights_load() -> None:
    from peftbench.run import preflight

    with pytest.raises(ConfigError, match=r"model=tiny_bert task=xsum: model tiny_bert \(bert\) has no seq2seq head"):
        preflight(validate(compose(["task=xsum", "model=tiny_bert"])))
