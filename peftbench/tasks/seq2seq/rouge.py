"""ROUGE with Google's ``rouge-score`` (Porter stemming on) and an offline sentence splitter for ROUGE-Lsum.

ROUGE-Lsum is the summary-level LCS over sentences; rouge-score reads sentences as lines, so texts are split
first. The papers (HF ``run_summarization``, the base of AdaLoRA's NLG script) split with NLTK punkt, whose data
cannot be downloaded here. :func:`split_sentences` is a regex splitter instead: a boundary is a newline, or
``.``/``!``/``?`` (with closing quotes or brackets) followed by whitespace and an upper-case letter, digit or
opening quote, unless the word before the period is a known abbreviation (Mr., Dr., St., U.S., ...) or a single
initial. Where it differs from punkt: punkt learns abbreviations and collocations from data, so it can keep
unseen abbreviations (``approx. 5``) together, and it also splits before lower-case words after a clear sentence
end; ours never splits before a lower-case word and knows only the list below. Only ROUGE-Lsum depends on the
splitter: ROUGE-1/2/L ignore sentence boundaries. The size of the effect on real XSum rows is measured in
tests/tasks/test_seq2seq_rouge.py (lead-1 and lead-3 ROUGE-Lsum with this splitter vs newline-only splitting).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rouge_score import rouge_scorer

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")

ABBREVIATIONS = frozenset("""
mr mrs ms dr prof st jr sr sen rep gov gen col lt sgt capt cmdr adm rev hon messrs mme mlle
inc ltd co corp plc bros no nos vol vols fig figs pp ed eds est approx dept univ assn ave blvd rd
jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed thu thurs fri sat sun
vs etc al e.g i.e u.s u.k u.n u.s.a e.u a.m p.m
""".split())

# A candidate boundary: sentence-final punctuation, optional closing quotes/brackets, whitespace, then a
# sentence start (upper-case letter, digit, or an opening quote/bracket).
_BOUNDARY = re.compile(r"""([.!?]+["'”’)\]]*)\s+(?=["'“‘(\[]?[A-Z0-9])""")
_WORD_BEFORE = re.compile(r"""(\S+)$""")


def _is_abbreviation(text_before: str) -> bool:
    """Whether the period ending ``text_before`` belongs to an abbreviation or an initial (``J. Smith``)."""
    match = _WORD_BEFORE.search(text_before)
    if match is None:
        return False
    word = match.group(1).lstrip("\"'“‘([").rstrip(".").lower()
    return word in ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``: newlines always split; see the module docstring for the rule."""
    sentences = []
    for line in text.splitlines():
        start = 0
        for match in _BOUNDARY.finditer(line):
            end = match.end(1)
            if match.group(1) == "." and _is_abbreviation(line[start:match.start(1)]):
                continue
            sentences.append(line[start:end].strip())
            start = match.end()
        sentences.append(line[start:].strip())
    return [s for s in sentences if s]


def newline_split(text: str) -> list[str]:
    """The alternative of splitting on newlines only (what rouge-score does with unsplit text)."""
    return [s.strip() for s in text.splitlines() if s.strip()]


def rouge(predictions: Iterable[str], references: Iterable[str], *, splitter=split_sentences,
          types: Iterable[str] = ROUGE_TYPES) -> dict[str, float]:
    """Mean F-measure per ROUGE type over example pairs, in [0, 1] (the papers print x100). HF's ``rouge``
    metric reports the mid of a bootstrap interval; the plain mean is what that mid estimates."""
    types = tuple(types)
    scorer = rouge_scorer.RougeScorer(list(types), use_stemmer=True)
    totals = dict.fromkeys(types, 0.0)
    count = 0
    for prediction, reference in zip(predictions, references, strict=True):
        if "rougeLsum" in types:
            prediction, reference = "\n".join(splitter(prediction)), "\n".join(splitter(reference))
        scores = scorer.score(reference, prediction)  # rouge-score's order: target, prediction
        for name in types:
            totals[name] += scores[name].fmeasure
        count += 1
    return {name: totals[name] / count if count else 0.0 for name in types}


def lead(text: str, k: int = 1) -> str:
    """The lead-k baseline: the first ``k`` sentences of a document."""
    return "\n".join(split_sentences(text)[:k])
