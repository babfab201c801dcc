"""Less padding. Training batches grouped by length (``trainer.group_by_length``) and held-out sets evaluated in
length order, with the predictions put back in dataset order by each family.

Grouping follows the "mega-batch" recipe of fairseq and HF's ``LengthGroupedSampler``: a seeded permutation is cut
into mega-batches of ``MEGA_BATCHES`` batches, each mega-batch is sorted by length and cut into batches, and the
batches are shuffled, except that the batch holding the longest example goes first (as HF's sampler does). The
order depends only on the seed and the epoch (no global RNG), so every process computes the same one and
Accelerate's sharding and ``skip_first_batches`` (mid-epoch resume) work as with its own sampler.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler, Subset

MEGA_BATCHES = 50  # batches per sorted mega-batch: wide enough to group lengths, narrow enough to stay random


def lengths_of(dataset: Any) -> list[int]:
    """Input tokens of every item: the dataset's own ``lengths()`` when it has one (no item is built)."""
    if isinstance(dataset, Subset):
        lengths = lengths_of(dataset.dataset)
        return [lengths[index] for index in dataset.indices]
    if hasattr(dataset, "lengths"):
        return list(dataset.lengths())
    return [len(dataset[index]["input_ids"]) for index in range(len(dataset))]


def grouped_order(lengths: Sequence[int], batch_size: int, seed: int, mega_batches: int = MEGA_BATCHES) -> list[int]:
    """A permutation whose consecutive ``batch_size`` chunks hold similar lengths, in a seeded random batch order
    that starts with the longest batch."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    span = mega_batches * batch_size
    batches = []
    for start in range(0, len(order), span):
        chunk = sorted(order[start:start + span], key=lambda index: -lengths[index])
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    # Only the very last batch can be short; it stays last so that every other batch boundary falls where the
    # DataLoader cuts (a short batch in the middle would shift the cuts and mix lengths again).
    short = [batches.pop()] if batches and len(batches[-1]) < batch_size else []
    shuffled = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    # The longest batch goes first, as in HF's sampler: a run that cannot fit it fails at step 1, and the
    # allocator meets the largest activations before smaller ones fragment its heap (whole-run peak memory).
    longest = max(range(len(shuffled)), key=lambda i: max(lengths[index] for index in shuffled[i]), default=0)
    shuffled[0:0] = [shuffled.pop(longest)] if shuffled else []
    return [index for batch in [*shuffled, *short] for index in batch]


class LengthGroupedSampler(Sampler[int]):
    """:func:`grouped_order` for ``seed + epoch``; ``batch_size`` is the global batch (all processes)."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int) -> None:
        self.lengths, self.batch_size, self.seed = list(lengths), batch_size, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        return iter(grouped_order(self.lengths, self.batch_size, self.seed + self.epoch))


def padding_fraction(lengths: Sequence[int], order: Sequence[int], batch_size: int,
                     padded_length: int | None = None) -> float:
    """Padding tokens over all tokens when ``order`` is cut into batches padded to their longest item (or to
    ``padded_length`` when the family pads to a fixed length)."""
    real = padded = 0
    for start in range(0, len(order), batch_size):
        batch = [lengths[index] for index in order[start:start + batch_size]]
        real, padded = real + sum(batch), padded + max(*batch, padded_length or 0) * len(batch)
    return round(1 - real / padded, 6) if padded else 0.0


def random_order(size: int, seed: int) -> list[int]:
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed)).tolist()


class LengthSorted(Subset):
    """A held-out set in evaluation order (``indices``: position -> dataset index); predictions made in this
    order go back to dataset order with :func:`in_dataset_order`."""


def sorted_for_evaluation(dataset: Dataset, order: Sequence[int]) -> LengthSorted:
    return LengthSorted(dataset, list(order))


def base_dataset(dataset: Any) -> Any:
    """The dataset under any :class:`~torch.utils.data.Subset` wrappers (evaluation order, recipe subsets)."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset


def in_dataset_order(dataset: Any, values: Sequence[Any]) -> list[Any]:
    """``values`` predicted over ``dataset`` position by position, rearranged into the order of the dataset it
    wraps (unchanged for a plain dataset). ``values`` may cover a prefix of the positions whose dataset indices
    are themselves a prefix (the seq2seq generation subset)."""
    if not isinstance(dataset, LengthSorted):
        return list(values)
    result: list[Any] = [None] * len(values)
    for position, value in enumerate(values):
        result[dataset.indices[position]] = value
    return result


def length_order(lengths: Sequence[int], start: int = 0, stop: int | None = None) -> list[int]:
    """Indices ``start..stop`` longest first (stable): the longest batch runs first, so a set that does not fit
    in memory fails at once."""
    stop = len(lengths) if stop is None else stop
    return sorted(range(start, stop), key=lambda index: -lengths[index])


def train_loader(dataset: Dataset, batch_size: int, collate: Any, *, seed: int, group_by_length: bool,
                 processes: int = 1, num_workers: int = 0,
                 padded_length: int | None = None) -> tuple[torch.utils.data.DataLoader, dict[str, Any]]:
    """The training DataLoader (``batch_size`` per process) and the padding one epoch of it would have with and
    without grouping, computed from the lengths (the record's ``cost`` adds the measured fraction).

    Groups are whole global batches (``batch_size * processes``, longest first), which Accelerate cuts into
    consecutive per-process slices: every optimizer step sees the same examples with 1 or N processes.
    Batches padded to a fixed ``padded_length`` (SQuAD's windows) are never grouped: the record's
    ``group_by_length`` says false and ``group_by_length_skipped`` why."""
    from torch.utils.data import DataLoader

    lengths = lengths_of(dataset)
    shuffled = padding_fraction(lengths, random_order(len(lengths), seed), batch_size, padded_length)
    # Batches padded to one fixed length cost the same in any order: grouping would only move the data order away
    # from the uniform shuffle (on the SQuAD quick preset, LoRA's validation F1 fell from 45.0 to 34.3 with it).
    grouped = group_by_length and padded_length is None
    padding = {"group_by_length": grouped, "padding_fraction_ungrouped": shuffled}
    if group_by_length and not grouped:
        padding["group_by_length_skipped"] = f"every batch is padded to {padded_length} tokens"
    if not grouped:  # shuffle=True: Accelerate swaps in its seedable sampler (the papers' data order)
        return DataLoader(dataset, batch_size=batch_size, shuffle=True, collate_fn=collate,
                          num_workers=num_workers), padding
    sampler = LengthGroupedSampler(lengths, batch_size * processes, seed)
    padding["padding_fraction_grouped"] = padding_fraction(lengths, list(sampler), batch_size, padded_length)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate,
                      num_workers=num_workers), padding
