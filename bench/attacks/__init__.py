"""Attack registry: importing this package registers every attack."""

from bench.attacks import aa_fast, adaptive, apgd, autoattack, cw_l2, gradient  # noqa: F401  (registration side effects)
from bench.attacks.base import ATTACKS, Attack, AttackOutput, build_attack, build_attacks

__all__ = ["ATTACKS", "Attack", "AttackOutput", "build_attack", "build_attacks"]
