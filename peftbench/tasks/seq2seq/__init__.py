"""Seq2seq family: abstractive summarization (XSum, CNN/DailyMail; AdaLoRA Table 3) scored with ROUGE."""

from peftbench.tasks import register
from peftbench.tasks.seq2seq.family import Seq2Seq

register("seq2seq", Seq2Seq)
