"""The tokenized-data cache (peftbench/datacache.py): hits, keys, atomic writes, damaged entries."""

from __future__ import annotations

import pytest
from support import ROOT, compose, tiny_overrides

from peftbench import datacache
from peftbench.train import train


def comparable(record: dict) -> dict:
    return {"metrics": record["metrics"], "losses": [h["train_loss"] for h in record["history"]],
            "used": record["data"]["used"], "tokens": record["cost"]["tokens_seen"]}


def entries(tmp_path) -> list:
    return sorted((tmp_path / "results" / ".cache" / "tokenized").glob("*.pkl"))


def test_second_run_reads_the_cache_and_does_not_tokenize(tmp_path, monkeypatch) -> None:
    first = train(compose(tiny_overrides(tmp_path)))
    assert first["data"]["preparation"]["cache"] == "miss" and len(entries(tmp_path)) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("tokenized again despite a cache entry")

    from peftbench import tasks

    family = tasks.get("classification")  # importing a family module directly would stop the other's discovery
    monkeypatch.setattr(family, "featurize", refuse)
    monkeypatch.setattr(family, "load", refuse)
    second = train(compose(tiny_overrides(tmp_path, "seed=3", "experiment_name=again")))
    assert second["data"]["preparation"]["cache"] == "hit"
    third = train(compose(tiny_overrides(tmp_path, "experiment_name=same")))
    assert comparable(third) == comparable(first)
    assert {k: v for k, v in third["data"].items() if k != "preparation"} == \
        {k: v for k, v in first["data"].items() if k != "preparation"}


def test_lengths_caps_split_and_vocabulary_change_the_key(tmp_path) -> None:
    from peftbench import tasks
    from peftbench.config import validate
    from peftbench.models import build_tokenizer

    def key(*overrides: str, new_token: str | None = None) -> str:
        run = validate(compose(tiny_overrides(tmp_path, *overrides)))
        tokenizer = build_tokenizer(run.model)
        if new_token is not None:
            tokenizer.add_tokens([new_token])
        return datacache.cache_key(run, tasks.family_for(run.task), tokenizer)

    base = key()
    # training knobs, and another model with the same tokenizer, share the data
    assert key("seed=9", "method=bitfit", "trainer.lr=0.1", "model=tiny_roberta") == base
    others = [key("task.max_length=32"), key("task.max_train_samples=40"), key("task.max_eval_samples=16"),
              key("task.split_seed=1"), key(new_token="peftbenchtoken")]
    assert len({base, *others}) == 1 + len(others)


def test_damaged_entry_is_ignored_and_rewritten(tmp_path, capsys) -> None:
    first = train(compose(tiny_overrides(tmp_path)))
    (entry,) = entries(tmp_path)
    entry.write_bytes(entry.read_bytes()[:100])  # cut short, as by a full disk
    again = train(compose(tiny_overrides(tmp_path, "force=true")))
    assert again["data"]["preparation"]["cache"] == "miss" and "ignoring unreadable" in capsys.readouterr().err
    assert comparable(again) == comparable(first)
    assert datacache.read_entry(entry) is not None  # rebuilt whole
    assert not [p for p in entry.parent.iterdir() if p.suffix == ".tmp"]


def test_cache_off_and_unwritable_cache_do_not_stop_a_run(tmp_path) -> None:
    off = train(compose(tiny_overrides(tmp_path, "paths.cache_dir=null")))
    assert off["data"]["preparation"]["cache"] == "off" and not entries(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    datacache.write_entry(blocker / "tokenized" / "x.pkl", {"a": 1})  # warns, raises nothing


def test_write_is_atomic(tmp_path, monkeypatch) -> None:
    """A writer that dies mid-write leaves the previous entry and no temporary file."""
    path = tmp_path / "tokenized" / "key.pkl"
    datacache.write_entry(path, {"old": 1})

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(datacache.pickle, "dump", crash)
    with pytest.raises(KeyboardInterrupt):
        datacache.write_entry(path, {"new": 2})
    assert datacache.read_entry(path) == {"old": 1} and [p.name for p in path.parent.iterdir()] == ["key.pkl"]


SUMMARIZATION = ROOT.parent / "shared" / "data" / "summarization"


@pytest.mark.skipif(not (SUMMARIZATION / "xsum" / "test.jsonl").is_file(), reason="no XSum rows")
def test_seq2seq_sets_get_the_runs_tokenizer_back(tmp_path) -> None:
    """A summarization set is cached without its tokenizer; the run that reads it attaches its own and scores
    the same ROUGE."""
    overrides = ["model=tiny_bart", "task=xsum", f"data_dir={SUMMARIZATION}", "task.options.split_from=test.jsonl",
                 "task.options.max_source_length=32", "task.options.max_target_length=8", "task.options.num_beams=1",
                 "task.max_eval_samples=6", "task.max_train_samples=16", "trainer.max_steps=2", "trainer.eval_every=2"]
    first = train(compose(tiny_overrides(tmp_path, *overrides)))
    second = train(compose(tiny_overrides(tmp_path, *overrides, "experiment_name=again")))
    assert (first["data"]["preparation"]["cache"], second["data"]["preparation"]["cache"]) == ("miss", "hit")
    assert comparable(second) == comparable(first)


def test_a_used_tokenizer_keeps_its_fingerprint(tmp_path) -> None:
    from peftbench.config import validate
    from peftbench.models import build_tokenizer

    tokenizer = build_tokenizer(validate(compose(tiny_overrides(tmp_path))).model)
    before = datacache.tokenizer_fingerprint(tokenizer)
    tokenizer(["a sentence to cut"], truncation=True, max_length=3, padding="max_length")
    assert datacache.tokenizer_fingerprint(tokenizer) == before
