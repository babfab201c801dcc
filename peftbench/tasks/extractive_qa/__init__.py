"""Extractive question answering (SQuAD v1.1 and v2.0): spans of a context, predicted by start/end logits of
``AutoModelForQuestionAnswering``, scored with the official SQuAD EM/F1 (v2.0: plus HasAns/NoAns and the best
null-answer threshold).

Modules: ``sources`` (SQuAD JSON from the hub or local files, the seeded by-article split), ``features``
(question/context windows with doc stride, span labels, the collator), ``postprocess`` (n-best span search,
the null score), ``metrics`` (normalisation, EM/F1, the v2.0 breakdowns and thresholds), ``family``.
"""

from peftbench.tasks import register
from peftbench.tasks.extractive_qa.family import ExtractiveQA

register("extractive_qa", ExtractiveQA)
