"""Registry of defenses: architectures, training losses, recipes, the trainer, checkpoints."""

from defenses.registry import DEFENSES, Defense, Recipe

__all__ = ["DEFENSES", "Defense", "Recipe"]
