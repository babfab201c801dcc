"""Length-grouped training batches and length-sorted evaluation (peftbench/batching.py)."""

from __future__ import annotations

import random

import pytest
import torch
from accelerate.data_loader import BatchSamplerShard
from support import ROOT, compose, tiny_overrides
from torch.utils.data import BatchSampler, DataLoader

from peftbench import batching

RANDOM = random.Random(0)
LENGTHS = [RANDOM.randint(3, 120) for _ in range(203)]


def batches_of(order: list[int], size: int) -> list[list[int]]:
    return [order[i:i + size] for i in range(0, len(order), size)]


def test_grouped_order_is_a_seeded_permutation() -> None:
    first = batching.grouped_order(LENGTHS, 8, seed=3, mega_batches=5)
    assert sorted(first) == list(range(len(LENGTHS)))
    assert first == batching.grouped_order(LENGTHS, 8, seed=3, mega_batches=5)
    assert first != batching.grouped_order(LENGTHS, 8, seed=4, mega_batches=5)


def test_grouped_batches_pad_less_and_keep_the_short_batch_last() -> None:
    order = batching.grouped_order(LENGTHS, 8, seed=1, mega_batches=5)
    batches = batches_of(order, 8)
    assert all(len(b) == 8 for b in batches[:-1]) and len(batches[-1]) == len(LENGTHS) % 8
    for batch in batches[:-1]:  # each batch is a run of one sorted mega-batch
        lengths = [LENGTHS[i] for i in batch]
        assert lengths == sorted(lengths, reverse=True)
    grouped = batching.padding_fraction(LENGTHS, order, 8)
    shuffled = batching.padding_fraction(LENGTHS, batching.random_order(len(LENGTHS), 1), 8)
    assert grouped < shuffled / 3


@pytest.mark.parametrize("seed", range(4))
def test_the_longest_batch_runs_first(seed: int) -> None:
    """As in HF's sampler: a batch that does not fit fails at step 1, and the heap meets its largest need first."""
    batches = batches_of(batching.grouped_order(LENGTHS, 8, seed=seed, mega_batches=5), 8)
    longest = [max(LENGTHS[i] for i in batch) for batch in batches[:-1]]
    assert longest[0] == max(longest) == max(LENGTHS)
    assert len(batches[-1]) == len(LENGTHS) % 8  # the short batch stays last


def test_padding_fraction_counts_pad_tokens() -> None:
    assert batching.padding_fraction([2, 4, 3, 3], [0, 1, 2, 3], 2) == pytest.approx(1 - 12 / 14, abs=1e-6)


def test_epochs_reorder_and_the_sampler_is_the_function() -> None:
    sampler = batching.LengthGroupedSampler(LENGTHS, 8, seed=5)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) == batching.grouped_order(LENGTHS, 8, 6) != epoch0
    assert len(sampler) == len(LENGTHS)


def test_each_process_gets_its_slice_of_the_same_global_batches() -> None:
    """Grouped over the global batch of 8, then cut by Accelerate into 4 per process: step k sees the same
    examples with 1 or 2 processes."""
    one = batches_of(list(batching.LengthGroupedSampler(LENGTHS, 8, seed=2)), 8)
    per_process = BatchSampler(batching.LengthGroupedSampler(LENGTHS, 8, seed=2), 4, drop_last=False)
    ranks = [list(BatchSamplerShard(per_process, num_processes=2, process_index=p)) for p in range(2)]
    for step, batch in enumerate(one[:-1]):
        assert ranks[0][step] + ranks[1][step] == batch


def test_mid_epoch_resume_skips_exactly_the_batches_done() -> None:
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration

    accelerator = Accelerator(cpu=True, dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True))
    dataset = [{"input_ids": torch.ones(length, dtype=torch.long)} for length in LENGTHS]
    loader, _ = batching.train_loader(dataset, 8, lambda items: [len(i["input_ids"]) for i in items], seed=7,
                                      group_by_length=True)
    loader = accelerator.prepare(loader)
    loader.set_epoch(2)
    whole = list(loader)
    assert whole == batches_of([LENGTHS[i] for i in batching.grouped_order(LENGTHS, 8, 9)], 8)
    loader.set_epoch(2)
    assert list(accelerator.skip_first_batches(loader, 5)) == whole[5:]


def test_fixed_length_batches_are_never_grouped() -> None:
    """Padded to one length, every order costs the same: the loader keeps the uniform shuffle and says why."""
    dataset = [{"input_ids": torch.ones(length, dtype=torch.long)} for length in LENGTHS]
    collate = lambda items: [len(i["input_ids"]) for i in items]  # noqa: E731
    grouped, padding = batching.train_loader(dataset, 8, collate, seed=7, group_by_length=True)
    assert isinstance(grouped.sampler, batching.LengthGroupedSampler) and padding["group_by_length"]
    fixed, padding = batching.train_loader(dataset, 8, collate, seed=7, group_by_length=True, padded_length=64)
    assert isinstance(fixed.sampler, torch.utils.data.RandomSampler)
    assert padding["group_by_length"] is False and "64 tokens" in padding["group_by_length_skipped"]
    assert "padding_fraction_grouped" not in padding


def test_predictions_go_back_to_dataset_order() -> None:
    order = batching.length_order(LENGTHS)
    wrapped = batching.sorted_for_evaluation(list(range(len(LENGTHS))), order)
    assert [LENGTHS[wrapped[i]] for i in range(len(wrapped))] == sorted(LENGTHS, reverse=True)
    assert batching.in_dataset_order(wrapped, [wrapped[i] * 10 for i in range(len(wrapped))]) == \
        [i * 10 for i in range(len(LENGTHS))]
    prefix = batching.length_order(LENGTHS, 0, 5) + batching.length_order(LENGTHS, 5)
    head = batching.sorted_for_evaluation(list(range(len(LENGTHS))), prefix)
    assert batching.in_dataset_order(head, [head[i] for i in range(5)]) == list(range(5))


class Identity:
    """The method interface ``predict`` uses, doing nothing."""

    def prepare_inputs(self, model, batch):
        return batch

    def virtual_tokens(self) -> int:
        return 0

    def virtual_token_position(self) -> int:
        return 0


def predictions_both_ways(tmp_path, *overrides: str, rows: int = 13, batch: int = 4, final: bool = True):
    """The family's predictions over a held-out set in dataset order and in evaluation (length) order."""
    from accelerate import Accelerator

    from peftbench import tasks
    from peftbench.config import validate
    from peftbench.models import build_model, build_tokenizer

    run = validate(compose(tiny_overrides(tmp_path, *overrides)))
    family = tasks.family_for(run.task)
    tokenizer = build_tokenizer(run.model)
    dataset = family.featurize(family.load(run.data_dir).eval["validation"][:rows], tokenizer)
    torch.manual_seed(0)
    model = build_model(run.model, family.num_labels(), model_class=family.model_class).eval()
    accelerator = Accelerator(cpu=True)
    collate = family.collator(tokenizer)
    plain = DataLoader(dataset, batch_size=batch, collate_fn=collate)
    ordered = DataLoader(batching.sorted_for_evaluation(dataset, family.evaluation_order(dataset)),
                         batch_size=batch, collate_fn=collate)
    assert [len(b["input_ids"][0]) for b in ordered] == sorted((len(b["input_ids"][0]) for b in ordered),
                                                              reverse=True)
    return [(family.predict(model, loader, accelerator, Identity(), final=final), loader.dataset, family)
            for loader in (plain, ordered)]


def test_classification_sorted_evaluation_gives_the_same_predictions(tmp_path) -> None:
    (plain, _, family), (ordered, dataset, _) = predictions_both_ways(tmp_path, "task.max_length=64")
    assert ordered[1].tolist() == plain[1].tolist()  # labels back in dataset order
    assert ordered[0].tolist() == plain[0].tolist()
    assert family.score(ordered, dataset) == family.score(plain, dataset)


SQUAD = ["task=squad", f"data_dir={ROOT.parent / 'shared' / 'data' / 'squad'}", "task.max_length=128",
         "task.options.doc_stride=32"]
XSUM = ["model=tiny_bart", "task=xsum", f"data_dir={ROOT.parent / 'shared' / 'data' / 'summarization'}",
        "task.options.split_from=test.jsonl", "task.options.max_source_length=64", "task.options.max_target_length=16",
        "task.options.num_beams=2"]


@pytest.mark.skipif(not (ROOT.parent / "shared" / "data" / "squad" / "dev-v1.1.json").is_file(), reason="no SQuAD")
def test_extractive_qa_sorted_evaluation_maps_features_back(tmp_path) -> None:
    (plain, _, family), (ordered, dataset, _) = predictions_both_ways(tmp_path, *SQUAD, rows=9)
    assert sorted(ordered) == sorted(plain) == list(range(len(dataset)))
    for feature, (start, end) in plain.items():
        assert ordered[feature][0] == pytest.approx(start, abs=1e-5)
        assert ordered[feature][1] == pytest.approx(end, abs=1e-5)
    assert family.score(ordered, dataset) == pytest.approx(family.score(plain, dataset), abs=1e-9)


@pytest.mark.skipif(not (ROOT.parent / "shared" / "data" / "summarization" / "xsum" / "test.jsonl").is_file(),
                    reason="no XSum rows")
@pytest.mark.parametrize(("generated", "final"), [(None, True), (5, False), (5, True)])
def test_seq2seq_sorted_evaluation_keeps_the_generation_subset(tmp_path, generated: int | None, final: bool) -> None:
    """The first ``eval_generate_examples`` examples are generated, in dataset order, sorted or not."""
    subset = [] if generated is None else [f"task.options.eval_generate_examples={generated}"]
    runs = predictions_both_ways(tmp_path, *XSUM, *subset, rows=11, batch=3, final=final)
    (plain, _, family), (ordered, dataset, _) = runs
    assert len(ordered["summaries"]) == (11 if final else generated)
    assert ordered["summaries"] == plain["summaries"]
    assert ordered["nll"] == pytest.approx(plain["nll"], rel=1e-5)
    assert family.score(ordered, dataset) == pytest.approx(family.score(plain, dataset), rel=1e-5)
