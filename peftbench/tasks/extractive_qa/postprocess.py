"""From start/end logits of features back to one answer per example (n-best span search, null score).

Each feature's logits are aligned with its own input (a method's virtual tokens already stripped by ``predict``).
A span (s, e) is a candidate when both tokens are context tokens of the feature, e >= s, it is at most
``max_answer_length`` tokens long and s, e are among the ``n_best`` highest start and end logits; its score is
start_logit[s] + end_logit[e]. The best candidate over every feature of an example is the answer. The null score
(v2.0) is start_logit[CLS] + end_logit[CLS], the smallest over the example's features (as BERT's and Hugging
Face's SQuAD scripts do).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Answer:
    text: str  # the best non-empty span ("" when no feature has a valid span)
    score: float  # its start + end logit
    null_score: float  # CLS start + end logit, minimum over features

    @property
    def null_diff(self) -> float:
        """Null score minus best span score: the no-answer probability evaluate-v2.0 thresholds."""
        return self.null_score - self.score


def best_spans(start: np.ndarray, end: np.ndarray, offsets: list[tuple[int, int] | None], n_best: int,
               max_answer_length: int) -> list[tuple[float, int, int]]:
    """Valid (score, start token, end token) candidates of one feature, best first."""
    starts = np.argsort(start)[::-1][:n_best]
    ends = np.argsort(end)[::-1][:n_best]
    candidates = []
    for s in starts.tolist():
        if s >= len(offsets) or offsets[s] is None:
            continue
        for e in ends.tolist():
            if e >= len(offsets) or offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                continue
            candidates.append((float(start[s] + end[e]), s, e))
    return sorted(candidates, key=lambda c: -c[0])


def answer_example(context: str, features: list[tuple[np.ndarray, np.ndarray, list, int]], n_best: int,
                   max_answer_length: int) -> Answer:
    """``features``: (start logits, end logits, offsets, CLS index) of every feature of one example."""
    best: tuple[float, str] = (-np.inf, "")
    null = np.inf
    for start, end, offsets, cls in features:
        null = min(null, float(start[cls] + end[cls]))
        spans = best_spans(start, end, offsets, n_best, max_answer_length)
        if spans and spans[0][0] > best[0]:
            score, s, e = spans[0]
            best = (score, context[offsets[s][0]:offsets[e][1]])
    score = best[0] if np.isfinite(best[0]) else -1e9  # no valid span anywhere: the null answer wins
    return Answer(text=best[1], score=float(score), null_score=float(null))
