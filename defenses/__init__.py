"""Defenses: one module per training method at this level; the machinery they share is in
`defenses.training` (registry, recipes, trainer, checkpoints) and `defenses.nets` (architectures)."""

from defenses.nets import reverse_attention  # noqa: F401  (registers the *-ra architectures)
from defenses.training.registry import DEFENSES, Defense, Recipe, published

__all__ = ["DEFENSES", "Defense", "Recipe", "published"]
