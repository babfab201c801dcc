"""SQuAD metrics written from the official scripts' definitions (evaluate-v1.1.py, evaluate-v2.0.py).

Answers are normalised (lower case, punctuation removed, articles a/an/the removed, whitespace collapsed); EM is
string equality after normalisation, F1 the token-overlap F1; both take the maximum over the gold answers and are
reported in percent. v1.1 (``exact_match``, ``f1``): an empty prediction scores 0. v2.0 (``exact``, ``f1``, the
``HasAns_``/``NoAns_`` breakdowns, ``best_exact``/``best_f1`` and their thresholds): an unanswerable question's
gold is ``[""]``, empty against empty scores 1, and the no-answer probability of a question is the null score
minus the best span score, thresholded at ``null_threshold`` (0) for ``exact``/``f1`` and searched over every
question for the ``best_*`` values, as the official script's ``find_best_thresh`` does.
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Sequence

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (the official order)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _tokens(text: str) -> list[str]:
    return normalize_answer(text).split() if text else []


def exact(prediction: str, gold: str) -> int:
    return int(normalize_answer(prediction) == normalize_answer(gold))


def f1_v1(prediction: str, gold: str) -> float:
    """evaluate-v1.1's f1_score: 0 when nothing overlaps (an empty prediction included)."""
    predicted, expected = _tokens(prediction), _tokens(gold)
    common = sum((collections.Counter(predicted) & collections.Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def f1_v2(prediction: str, gold: str) -> float:
    """evaluate-v2.0's compute_f1: if either side is empty, 1 when both are, else 0."""
    predicted, expected = _tokens(prediction), _tokens(gold)
    if not predicted or not expected:
        return float(predicted == expected)
    return f1_v1(prediction, gold)


def squad_v1(predictions: dict[str, str], golds: dict[str, Sequence[str]]) -> dict[str, float]:
    """``exact_match`` and ``f1`` in percent over the questions of ``golds``."""
    em = [max(exact(predictions.get(qid, ""), g) for g in answers) for qid, answers in golds.items()]
    f1 = [max(f1_v1(predictions.get(qid, ""), g) for g in answers) for qid, answers in golds.items()]
    return {"exact_match": 100.0 * sum(em) / len(em), "f1": 100.0 * sum(f1) / len(f1)}


def v2_golds(answers: Sequence[str]) -> list[str]:
    """Gold answers as evaluate-v2.0 reads them: answers that normalise to nothing dropped, none -> [""]."""
    return [a for a in answers if normalize_answer(a)] or [""]


def find_best_thresh(predictions: dict[str, str], scores: dict[str, float], na_probs: dict[str, float],
                     has_answer: dict[str, bool]) -> tuple[float, float]:
    """evaluate-v2.0's find_best_thresh: start with every question answered empty, then answer the questions in
    increasing no-answer probability; the best running score and the probability where it is reached."""
    current = best = sum(1 for qid in has_answer if not has_answer[qid])
    threshold = 0.0
    for qid in sorted(na_probs, key=lambda q: na_probs[q]):
        if qid not in scores:
            continue
        if has_answer[qid]:
            diff = scores[qid]
        else:
            diff = -1 if predictions[qid] else 0
        current += diff
        if current > best:
            best, threshold = current, na_probs[qid]
    return 100.0 * best / len(scores), float(threshold)


def squad_v2(predictions: dict[str, str], golds: dict[str, Sequence[str]], na_probs: dict[str, float],
             threshold: float = 0.0) -> dict[str, float]:
    """The official v2.0 metrics. ``predictions`` are the best non-empty spans, ``na_probs`` the null score minus
    that span's score; a question whose ``na_probs`` exceeds ``threshold`` is answered empty."""
    has_answer = {qid: bool(v2_golds(answers)[0]) for qid, answers in golds.items()}
    exact_raw = {qid: max(exact(predictions[qid], g) for g in v2_golds(a)) for qid, a in golds.items()}
    f1_raw = {qid: max(f1_v2(predictions[qid], g) for g in v2_golds(a)) for qid, a in golds.items()}

    def thresholded(raw: dict[str, float]) -> dict[str, float]:
        return {qid: float(not has_answer[qid]) if na_probs[qid] > threshold else s for qid, s in raw.items()}

    exact_t, f1_t = thresholded(exact_raw), thresholded(f1_raw)
    result: dict[str, float] = {}
    for prefix, keep in (("", lambda q: True), ("HasAns_", lambda q: has_answer[q]),
                         ("NoAns_", lambda q: not has_answer[q])):
        chosen = [qid for qid in golds if keep(qid)]
        result[f"{prefix}total"] = float(len(chosen))
        result[f"{prefix}exact"] = 100.0 * sum(exact_t[q] for q in chosen) / len(chosen) if chosen else 0.0
        result[f"{prefix}f1"] = 100.0 * sum(f1_t[q] for q in chosen) / len(chosen) if chosen else 0.0
    result["best_exact"], result["best_exact_thresh"] = find_best_thresh(predictions, exact_raw, na_probs, has_answer)
    result["best_f1"], result["best_f1_thresh"] = find_best_thresh(predictions, f1_raw, na_probs, has_answer)
    return result
