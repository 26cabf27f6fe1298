"""Reports and sanity checks ask the attack registry for roles; they never match attack names.
The attack layer asks its context for surrogates; it never names a defense."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bench.attacks import ATTACKS
from bench.attacks.autoattack import VERSION_COMPONENTS
from bench.attacks.base import Role, board_columns, has_role, sole_attack, with_role
from defenses import DEFENSES
from defenses.training.registry import transfer_surrogates

REPO = Path(__file__).resolve().parent.parent
# where attack names would be special cases: reporting, the sanity checks
ASKERS = [*sorted((REPO / "bench" / "reporting").glob("*.py")), REPO / "bench" / "auditing" / "checks.py"]


def test_every_role_is_played() -> None:
    assert all(with_role(role) for role in Role)


def test_the_compared_protocols_are_one_attack_each() -> None:
    assert sole_attack(Role.OFFICIAL_AUTOATTACK) != sole_attack(Role.FAST_AUTOATTACK)


def test_board_columns_have_distinct_positions_and_headings() -> None:
    columns = board_columns()
    assert len(columns) >= 1
    assert len({heading for heading, _ in columns}) == len(columns)
    positions = [ATTACKS.get(name).column.position for _, name in columns]  # type: ignore[union-attr]
    assert positions == sorted(set(positions))


def test_a_name_no_longer_registered_has_no_role() -> None:
    assert not any(has_role("retired-attack", role) for role in Role)


def test_transfer_has_a_default_surrogate_and_a_stand_in() -> None:
    ranked = transfer_surrogates()
    assert len(ranked) >= 2 and all(DEFENSES.get(name).published for name in ranked)


def _enum_member_values(tree: ast.AST) -> set[int]:
    """ids of the string constants that are values of Enum members (display text, not attack names)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any("Enum" in ast.unparse(base) for base in node.bases):
            inside |= {id(c) for c in ast.walk(node) if isinstance(c, ast.Constant)}
    return inside


@pytest.mark.parametrize("path", ASKERS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_attack_name_literal_where_roles_answer(path: Path) -> None:
    tree = ast.parse(path.read_text())
    skip = _enum_member_values(tree)
    names = set(ATTACKS.names())
    found = [(node.lineno, node.value) for node in ast.walk(tree) if isinstance(node, ast.Constant)
             and isinstance(node.value, str) and node.value in names and id(node) not in skip]
    assert found == [], f"ask the registry for a role instead (bench.attacks.base.Role): {found}"


def _string_literals(path: Path) -> list[tuple[int, str]]:
    return [(node.lineno, node.value) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


@pytest.mark.parametrize("path", sorted((REPO / "bench" / "attacks").glob("*.py")),
                         ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_defense_name_literal_in_the_attack_layer(path: Path) -> None:
    names = set(DEFENSES.names()) - set(VERSION_COMPONENTS)  # "standard" is also AutoAttack's version
    found = [(line, value) for line, value in _string_literals(path) if value in names]
    assert found == [], f"take it from the attack context (AttackContext.surrogates.ranked): {found}"
