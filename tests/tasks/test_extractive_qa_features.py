"""Windows with doc stride, span labels, recovery of an answer that crosses a window boundary, and ``predict``
(feature ids, virtual tokens)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from support import compose
from torch.utils.data import DataLoader

from peftbench.config import validate
from peftbench.models import build_model, build_tokenizer
from peftbench.tasks import family_for
from peftbench.tasks.base import DataError
from peftbench.tasks.extractive_qa.sources import Example

WORDS = "red blue green cat dog house tree river stone light water fire city road king queen music game".split()


def setup(*overrides: str):
    run = validate(compose(["model=tiny_bert", "task=squad", *overrides]))
    return run, family_for(run.task), build_tokenizer(run.model)


def long_example(answer_at: int, length: int = 3) -> Example:
    words = [WORDS[i % len(WORDS)] for i in range(120)]
    context = " ".join(words)
    start = len(" ".join(words[:answer_at])) + 1
    answer = " ".join(words[answer_at:answer_at + length])
    assert context[start:start + len(answer)] == answer
    return Example(id="long", title="T", context=context, question="which colour comes?", answers=(answer,),
                   starts=(start,))


def test_answer_across_a_window_boundary_is_recovered_from_the_whole_window() -> None:
    _, qa, tokenizer = setup("task.max_length=32", "task.options.doc_stride=8")
    probe = qa.featurize([long_example(50)], tokenizer)
    first_end = max(i for i, span in enumerate(probe.offsets[0]) if span is not None)
    cut_word = probe.offsets[0][first_end]  # the last context token of window 0 (one word per token here)
    words = probe.examples[0].context[:cut_word[0]].split()
    example = long_example(len(words))  # an answer starting at the last token of window 0
    features = qa.featurize([example], tokenizer)
    assert len(features) > 3 and set(features.example_index) == {0}
    cut, whole = 0, next(i for i in range(len(features)) if features.starts[i] != features.cls_index[i])
    assert features.starts[cut] == features.ends[cut] == features.cls_index[cut] == 0  # not wholly inside
    offsets = features.offsets[whole]
    assert example.context[offsets[features.starts[whole]][0]:offsets[features.ends[whole]][1]] == example.answers[0]
    # Logits: the cut window prefers its own partial span (score 10), the whole window the answer (score 15).
    predictions = {}
    for i in range(len(features)):
        start, end = np.zeros(features.length(i)), np.zeros(features.length(i))
        if i == cut:
            start[first_end], end[first_end] = 5.0, 5.0
        if i == whole:
            start[features.starts[i]], end[features.ends[i]] = 7.0, 8.0
        predictions[i] = (start, end)
    assert qa.answers(predictions, features)["long"].text == example.answers[0]
    assert qa.score(predictions, features) == {"exact_match": 100.0, "f1": 100.0}


def test_unanswerable_questions_point_at_cls_and_score_null() -> None:
    _, qa, tokenizer = setup("task=squad_v2", "task.max_length=32", "task.options.doc_stride=8")
    example = Example(id="none", title="T", context="the red cat sat on the blue mat", question="who?", answers=(),
                      starts=())
    features = qa.featurize([example], tokenizer)
    assert features.starts == features.ends == [0]
    start, end = np.zeros(features.length(0)), np.zeros(features.length(0))
    start[0] = end[0] = 4.0  # null score 8 > best span score 0
    scores = qa.score({0: (start, end)}, features)
    assert scores["exact"] == scores["NoAns_f1"] == 100.0


def test_a_question_longer_than_max_length_names_its_id() -> None:
    _, qa, tokenizer = setup("task.max_length=16", "task.options.doc_stride=4")
    example = Example(id="q-long", title="T", context="red blue", question=" ".join(WORDS), answers=("red",),
                      starts=(0,))
    with pytest.raises(DataError, match=r"question q-long .* task.max_length=16"):
        qa.featurize([example], tokenizer)


class PrependTwo:
    """A fake prompt method: two extra positions in front of every input."""

    def virtual_tokens(self) -> int:
        return 2

    def virtual_token_position(self) -> int:
        return 0

    def prepare_inputs(self, model, batch):
        def pad(tensor, value):
            return torch.cat([torch.full((tensor.shape[0], 2), value, dtype=tensor.dtype), tensor], dim=1)

        return {"input_ids": pad(batch["input_ids"], 1), "attention_mask": pad(batch["attention_mask"], 1),
                "token_type_ids": pad(batch["token_type_ids"], 0)}


class NoOp(PrependTwo):
    def virtual_tokens(self) -> int:
        return 0

    def prepare_inputs(self, model, batch):
        return batch


def test_predict_strips_virtual_tokens_and_returns_every_feature_once() -> None:
    run, qa, tokenizer = setup("task.max_length=32", "task.options.doc_stride=8")
    features = qa.featurize([long_example(20), long_example(60)], tokenizer)
    torch.manual_seed(0)
    model = build_model(run.model, None, model_class=qa.model_class).eval()
    loader = DataLoader(features, batch_size=3, collate_fn=qa.collator(tokenizer))
    accelerator = Accelerator(cpu=True)
    plain = qa.predict(model, loader, accelerator, NoOp())
    shifted = qa.predict(model, loader, accelerator, PrependTwo())
    assert sorted(plain) == sorted(shifted) == list(range(len(features)))
    assert "feature_index" not in features[0]  # training batches hold model arguments only
    model.eval()  # predict hands the model back in training mode
    with torch.no_grad():
        for i in range(len(features)):
            item = {k: torch.tensor([v]) for k, v in features[i].items() if k not in ("start_positions",
                                                                                     "end_positions")}
            direct = model(**PrependTwo().prepare_inputs(model, item))
            assert shifted[i][0].shape == (features.length(i),)
            np.testing.assert_allclose(shifted[i][0], direct.start_logits[0, 2:].numpy(), atol=1e-5)
            np.testing.assert_allclose(shifted[i][1], direct.end_logits[0, 2:].numpy(), atol=1e-5)
            np.testing.assert_allclose(plain[i][0], model(**item).start_logits[0].numpy(), atol=1e-5)


@pytest.mark.parametrize("pad_to_max_length", [True, False])
def test_a_windows_loss_depends_on_its_batch_only_with_dynamic_padding(pad_to_max_length: bool) -> None:
    """HF's QA heads take the start/end softmax over every position, padding included: with dynamic padding the
    same window's loss changes with the longest window of its batch (and so with length grouping and with the
    number of processes); padded to ``task.max_length``, as AdaLoRA's run_qa.py does, it does not."""
    run, qa, tokenizer = setup("task.max_length=48", "task.options.doc_stride=8",
                               f"task.options.pad_to_max_length={str(pad_to_max_length).lower()}")
    short = Example(id="short", title="T", context="red cat", question="which animal?", answers=("cat",),
                    starts=(4,))
    features = qa.featurize([short, long_example(20)], tokenizer)
    collate = qa.collator(tokenizer)
    torch.manual_seed(0)
    model = build_model(run.model, None, model_class=qa.model_class).eval()
    with torch.no_grad():
        alone = model(**collate([features[0]])).loss
        beside_a_longer_one = model(**collate([features[0], features[1]]))
        pairs = collate([features[0], features[1]])
        first = {key: value[:1] for key, value in pairs.items()}
        in_batch = model(**first).loss  # the same window, padded as its batch was
    assert features.length(1) > features.length(0) and beside_a_longer_one.loss is not None
    assert torch.isclose(alone, in_batch, atol=1e-6) == pad_to_max_length
    assert (collate([features[0]])["input_ids"].shape[1] == 48) == pad_to_max_length
