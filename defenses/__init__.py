"""Registry of defenses: architectures, training methods, recipes, the trainer, checkpoints."""

from defenses import reverse_attention  # noqa: F401  (registers the *-ra architectures)
from defenses.registry import DEFENSES, Defense, Recipe, published

__all__ = ["DEFENSES", "Defense", "Recipe", "published"]
