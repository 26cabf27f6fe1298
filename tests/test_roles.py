"""Reports and sanity checks ask the attack registry for roles; they never match attack names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bench.attacks import ATTACKS
from bench.attacks.base import Role, board_columns, has_role, sole_attack, with_role

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
