"""Architectures the defenses train: the registry of architectures, reverse-attention
variants and pooling layers."""
