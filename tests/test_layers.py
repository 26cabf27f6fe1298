"""The layers are packages: a new module inherits its layer from its folder, and the contract catches
a module in a lower layer that imports a higher one (import-linter, run on a copy of the tree)."""

from __future__ import annotations

import configparser
import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).parent / "lint-imports"


def _layer_names() -> set[str]:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    layers = config["importlinter:contract:layers"]["layers"]
    return {name.strip() for line in layers.splitlines() for name in line.split(":") if name.strip()}


def test_every_top_level_module_and_package_of_bench_has_a_layer() -> None:
    named = _layer_names()
    top = {f"bench.{m.name}" for m in pkgutil.iter_modules([str(REPO / "bench")])}
    assert top - named == set(), "add these to the layers in setup.cfg (or move them into a package)"
    assert "defenses" in named


def test_the_top_level_of_bench_stays_small() -> None:
    modules = [m for m in pkgutil.iter_modules([str(REPO / "bench")]) if not m.ispkg]
    assert len(modules) + 1 <= 20, [m.name for m in modules]  # + bench/__init__.py


def _lint_copy(tmp_path: Path, extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    for package in ("bench", "defenses", "examples"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "setup.cfg", tmp_path / "setup.cfg")
    for relative, text in extra.items():
        (tmp_path / relative).write_text(text)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.subprocess
@pytest.mark.timeout(300)
@pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (make install)")
@pytest.mark.parametrize("placed, imports", [
    ("bench/records/newmod.py", "from bench import api"),  # core importing the API
    ("bench/evaluation/newmod.py", "from bench.reporting import markdown"),  # evaluation importing reporting
    ("defenses/training/newmod.py", "from bench.evaluation import harness"),  # defenses importing evaluation
])
def test_a_new_module_in_a_lower_package_importing_a_higher_one_breaks_the_contract(
        tmp_path: Path, placed: str, imports: str) -> None:
    result = _lint_copy(tmp_path, {placed: f'"""A module nobody listed anywhere."""\n\n{imports}  # noqa: F401\n'})
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[1]
    assert "Layers:" in broken and "is not allowed to import" in broken, result.stdout
    assert f"{placed[:-3].replace('/', '.')} -> " in broken


@pytest.mark.subprocess
@pytest.mark.timeout(300)
@pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (make install)")
def test_the_same_module_importing_downwards_keeps_the_contract(tmp_path: Path) -> None:
    result = _lint_copy(tmp_path, {"bench/evaluation/newmod.py": '"""Fine."""\n\nfrom bench.records import schema  # noqa: F401\n'})
    assert result.returncode == 0, result.stdout
