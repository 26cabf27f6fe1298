"""Attack registry: importing this package imports each of its modules, which register their attacks."""

from bench.attacks.base import ATTACKS, Attack, AttackOutput, build_attack, build_attacks
from bench.attacks.specs import AttackSpec, format_attacks, parse_attacks
from bench.registry import import_modules

import_modules(__name__, __path__)

__all__ = ["ATTACKS", "Attack", "AttackOutput", "AttackSpec", "build_attack", "build_attacks", "format_attacks",
           "parse_attacks"]
