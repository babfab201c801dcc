"""Recipes: multi-stage procedures built from the functions of ``peftbench.train`` (never a second loop)."""
