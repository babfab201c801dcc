"""Official SQuAD metric semantics on hand-worked examples (evaluate-v1.1.py / evaluate-v2.0.py definitions)."""

from __future__ import annotations

import numpy as np
import pytest

from peftbench.tasks.catalog import metric
from peftbench.tasks.extractive_qa import metrics
from peftbench.tasks.extractive_qa.postprocess import answer_example, best_spans


def test_normalization_drops_case_punctuation_articles_and_extra_spaces() -> None:
    assert metrics.normalize_answer("  The Denver  Broncos!  ") == "denver broncos"
    assert metrics.normalize_answer("an apple, a pear") == "apple pear"
    assert metrics.normalize_answer("theatre") == "theatre"  # articles only as whole words


def test_v1_takes_the_best_of_several_gold_answers() -> None:
    golds = {"q1": ["Denver Broncos", "The Denver Broncos"], "q2": ["Denver Broncos", "Broncos"],
             "q3": ["Santa Clara"]}
    predictions = {"q1": "the denver broncos.", "q2": "the Broncos team", "q3": ""}
    # q1: EM 1, F1 1. q2: "broncos team" vs "denver broncos": P = R = 1/2 -> 1/2; vs "broncos": P 1/2, R 1
    # -> 2/3; max 2/3, EM 0. q3: an empty prediction scores 0 in v1.1.
    result = metrics.squad_v1(predictions, golds)
    assert result["exact_match"] == pytest.approx(100 / 3)
    assert result["f1"] == pytest.approx(100 * (1 + 2 / 3 + 0) / 3)


def test_v2_unanswerable_breakdowns_and_best_thresholds() -> None:
    golds = {"q1": ["Paris"], "q2": ["in 1990"], "q3": [], "q4": []}  # q3, q4 unanswerable: gold [""]
    predictions = {"q1": "Paris", "q2": "1990", "q3": "foo", "q4": "bar"}  # best non-empty spans
    na_probs = {"q1": -5.0, "q2": 2.0, "q3": 3.0, "q4": 2.5}  # null score - best span score
    result = metrics.squad_v2(predictions, golds, na_probs, threshold=0.0)
    # Threshold 0: q2, q3, q4 answered empty -> q1 1, q2 0, q3 1, q4 1.
    assert (result["exact"], result["f1"]) == (75.0, 75.0)
    assert (result["HasAns_exact"], result["HasAns_f1"], result["NoAns_exact"], result["NoAns_f1"]) == (
        50.0, 50.0, 100.0, 100.0)
    assert (result["total"], result["HasAns_total"], result["NoAns_total"]) == (4, 2, 2)
    # find_best_thresh: start at 2 (both unanswerable right), answer in order q1 (+1 -> 3, thresh -5),
    # q2 (EM +0; F1 +2/3 -> 3.67, thresh 2), q4 (-1), q3 (-1).
    assert (result["best_exact"], result["best_exact_thresh"]) == (75.0, -5.0)
    assert result["best_f1"] == pytest.approx(100 * (3 + 2 / 3) / 4)
    assert result["best_f1_thresh"] == 2.0


def test_v2_empty_against_empty_scores_one() -> None:
    assert metrics.f1_v2("", "") == 1.0
    assert metrics.f1_v2("x", "") == 0.0
    assert metrics.f1_v1("", "x") == 0.0
    assert metrics.v2_golds(["", "  ", "the"]) == [""]  # answers that normalise to nothing are dropped


def test_metric_directions_are_in_the_catalogue() -> None:
    for name in ("exact_match", "exact", "HasAns_exact", "HasAns_f1", "NoAns_f1", "best_exact", "best_f1"):
        assert metric(name).higher_is_better, name
    assert metric("test_exact_match").label == "EM"


def test_span_search_respects_context_order_and_length() -> None:
    offsets = [None, None, (0, 3), (4, 8), (9, 12), None]  # CLS, question, 3 context tokens, SEP
    start = np.array([9.0, 8.0, 1.0, 0.5, 0.2, 7.0])
    end = np.array([9.0, 8.0, 0.1, 2.0, 0.3, 7.0])
    spans = best_spans(start, end, offsets, n_best=20, max_answer_length=30)
    assert spans[0] == (3.0, 2, 3)  # the best valid span: context tokens, end >= start
    assert all(offsets[s] is not None and offsets[e] is not None and e >= s for _, s, e in spans)
    assert all(e - s + 1 <= 1 for _, s, e in best_spans(start, end, offsets, n_best=20, max_answer_length=1))
    answer = answer_example("abc defg hij", [(start, end, offsets, 0)], n_best=20, max_answer_length=30)
    assert answer.text == "abc defg" and answer.null_score == 18.0 and answer.null_diff == 15.0


def test_trivial_baselines() -> None:
    from peftbench.tasks.extractive_qa.baselines import score
    from peftbench.tasks.extractive_qa.sources import Example

    examples = [Example("a", "T", "Paris is big. It rains.", "What is big?", ("Paris",), (0,)),
                Example("b", "T", "Rome is old.", "Why?", (), ())]
    v2 = score(examples, "2.0")
    assert v2["empty"]["exact"] == 50.0 and v2["empty"]["NoAns_exact"] == 100.0
    assert v2["first_word"]["HasAns_exact"] == 100.0 and v2["first_word"]["NoAns_exact"] == 0.0
    assert score(examples[:1], "1.1")["first_sentence"]["f1"] == pytest.approx(100 * 2 * (1 / 3) / (1 + 1 / 3))
