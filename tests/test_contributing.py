"""CONTRIBUTING.md's worked examples, as written: a new attack and a new defense are each one
module (found by discovery, no list edited) plus a test, and the tests they come with pass."""

import importlib
import re
import sys
from pathlib import Path

import pytest

import bench.attacks
import defenses
from bench.attacks import ATTACKS
from bench.registry import import_modules
from defenses import DEFENSES

GUIDE = Path(__file__).resolve().parent.parent / "CONTRIBUTING.md"


def _files() -> dict[str, str]:
    return dict(re.findall(r"```python file=(\S+)\n(.*?)```", GUIDE.read_text(), re.S))


@pytest.fixture
def added(tmp_path, monkeypatch):
    """The guide's modules, dropped into their packages as a contributor would add them; the
    registries and packages are restored afterwards."""
    files = _files()
    monkeypatch.setattr(ATTACKS, "_entries", dict(ATTACKS._entries))
    monkeypatch.setattr(DEFENSES, "_entries", dict(DEFENSES._entries))
    added = []
    for package in (bench.attacks, defenses):
        folder = tmp_path / package.__name__
        folder.mkdir()
        prefix = package.__name__.replace(".", "/") + "/"
        for path, code in files.items():
            if path.startswith(prefix) and "/" not in path[len(prefix):]:
                (folder / Path(path).name).write_text(code)
                added.append(f"{package.__name__}.{Path(path).stem}")
        monkeypatch.setattr(package, "__path__", [*package.__path__, str(folder)])
        import_modules(package.__name__, [str(folder)])
    yield files
    for name in added:  # only the guide's modules: anything else imported meanwhile stays loaded
        sys.modules.pop(name, None)


def test_the_guide_has_an_attack_and_a_defense_each_with_its_test():
    files = _files()
    assert {p.split("/")[0] for p in files} == {"bench", "defenses", "tests"}
    assert sum(p.startswith("tests/") for p in files) == 2


def test_the_worked_examples_register_by_discovery_and_their_tests_pass(added, tmp_path):
    assert "rfgsm" in ATTACKS and "fast-at" in DEFENSES
    for path, code in added.items():
        if not path.startswith("tests/"):
            continue
        namespace: dict = {}
        exec(compile(code, str(GUIDE), "exec"), namespace)  # noqa: S102 (our own guide)
        tests = [f for name, f in namespace.items() if name.startswith("test_")]
        assert tests, path
        for test in tests:
            test(**({"tmp_path": tmp_path} if "tmp_path" in test.__code__.co_varnames else {}))


def test_the_examples_leave_the_registries_as_they_were():
    assert "rfgsm" not in ATTACKS and "fast-at" not in DEFENSES
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("bench.attacks.rfgsm")
