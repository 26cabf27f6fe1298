"""The machinery every defense shares: the registry and recipes, the method interface and
objectives, augmentation, the trainer and checkpoint files."""
