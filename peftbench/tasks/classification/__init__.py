"""Classification family: GLUE (hub or TSV) and Rotten Tomatoes, AdaLoRA's and SoRA's evaluation protocols."""

from peftbench.tasks import register
from peftbench.tasks.classification.family import Classification

register("classification", Classification)
