"""CONTRIBUTING.md's worked examples, as written: a new attack and a new defense are each one
module (found by discovery, no list edited) plus a test; a new dataset is one registration and a
leaderboard column one definition, each rendered everywhere it belongs; and the tests they come
with pass."""

import importlib
import re
import shlex
import sys
from pathlib import Path

import pytest

import bench.attacks
import defenses
from bench import data
from bench.attacks import ATTACKS
from bench.auditing.report import load_audits
from bench.cli import main
from bench.records.run_record import load_run_records
from bench.registry import import_modules
from bench.reporting import columns
from bench.reporting import html as board_html
from bench.reporting import markdown as board_markdown
from bench.reporting import rows as board_rows
from bench.reporting.document import Sources
from defenses import DEFENSES

GUIDE = Path(__file__).resolve().parent.parent / "CONTRIBUTING.md"


def _blocks(kind: str) -> dict[str, str]:
    """The guide's code blocks of one kind (`file`: a new file; `dataset`, `column`: an edit), by path."""
    return dict(re.findall(rf"```python {kind}=(\S+)\n(.*?)```", GUIDE.read_text(), re.S))


def _files() -> dict[str, str]:
    return _blocks("file")


@pytest.fixture
def added(tmp_path, monkeypatch):
    """The guide's modules, dropped into their packages as a contributor would add them; the
    registries and packages are restored afterwards."""
    files = _files()
    monkeypatch.setattr(ATTACKS, "_entries", dict(ATTACKS._entries))
    monkeypatch.setattr(DEFENSES, "_entries", dict(DEFENSES._entries))
    monkeypatch.setattr(data.DATASETS, "_entries", dict(data.DATASETS._entries))
    (registration,) = _blocks("dataset").values()
    exec(compile(registration, str(GUIDE), "exec"), dict(vars(data)))  # noqa: S102 (our own guide)
    (column,) = _blocks("column").values()
    new = eval(compile(column, str(GUIDE), "eval"), dict(vars(columns)))  # noqa: S307 (our own guide)
    after = [c.key for c in columns.RANKING].index("worst") + 1
    monkeypatch.setattr(columns, "RANKING", (*columns.RANKING[:after], new, *columns.RANKING[after:]))
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


def test_the_guide_has_an_attack_a_defense_a_dataset_and_a_column_each_with_its_test():
    files = _files()
    assert {p.split("/")[0] for p in files} == {"bench", "defenses", "tests"}
    assert sum(p.startswith("tests/") for p in files) == 4
    assert list(_blocks("dataset")) == ["bench/data.py"] and list(_blocks("column")) == ["bench/reporting/columns.py"]


def test_the_worked_examples_register_by_discovery_and_their_tests_pass(added, tmp_path):
    assert "rfgsm" in ATTACKS and "fast-at" in DEFENSES and "kmnist" in data.DATASETS
    for path, code in added.items():
        if not path.startswith("tests/"):
            continue
        namespace: dict = {}
        exec(compile(code, str(GUIDE), "exec"), namespace)  # noqa: S102 (our own guide)
        tests = [f for name, f in namespace.items() if name.startswith("test_")]
        assert tests, path
        for test in tests:
            test(**({"tmp_path": tmp_path} if "tmp_path" in test.__code__.co_varnames else {}))


def test_the_new_column_is_on_both_boards_and_sorts_as_a_number(added, committed):
    runs = load_run_records(committed / "runs")
    markdown, _ = board_markdown.render(runs)
    assert "| clean − worst " in markdown.replace("  ", " ")
    board = board_rows.prepare(runs, load_audits(committed / "audits"))
    page = board_html.render(board, Sources.committed(board.records))
    assert '<th data-key="gap" data-numeric="1" title="sort by clean − worst">clean − worst</th>' in page


def test_the_new_dataset_is_offered_wherever_a_dataset_is_asked_for(added, capsys):
    from bench.cli.arguments import dataset_help

    assert "kmnist" in dataset_help()
    assert main(["ls", "datasets"]) == 0 and "kmnist" in capsys.readouterr().out


def test_the_examples_leave_the_registries_as_they_were():
    assert "rfgsm" not in ATTACKS and "fast-at" not in DEFENSES and "kmnist" not in data.DATASETS
    assert "gap" not in [c.key for c in columns.RANKING]
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("bench.attacks.rfgsm")


def _publish_steps() -> list[list[str]]:
    """`make publish DEFENSE=pgd-at`'s bench commands, as argument lists (Make variables filled in)."""
    makefile = (GUIDE.parent / "Makefile").read_text()
    sweep = re.search(r"^EPS_SWEEP\s*:=\s*(\S+)", makefile, re.M).group(1)
    recipe = makefile.split("\npublish:", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in recipe.splitlines() if line.strip().startswith("$(BIN)/bench ")]
    return [shlex.split(line.removeprefix("$(BIN)/bench ").replace("$(DEFENSE)", "pgd-at")
                        .replace("$(EPS_SWEEP)", sweep)) for line in lines]


def test_make_publish_runs_what_the_tests_demand_of_a_published_defense():
    """What test_leaderboard.py checks for every published defense, step by step, parsed by the real CLI."""
    from bench.cli import build_parser

    parsed = [build_parser().parse_args(step) for step in _publish_steps()]
    by_command: dict[str, list] = {}
    for args in parsed:
        by_command.setdefault(args.command, []).append(args)
    assert list(by_command) == ["train", "run", "audit", "leaderboard", "check"]
    runs = by_command["run"]
    board = [a for a in runs if a.eps_sweep is None and {"fgsm", "pgd", "cw", "aa-fast", "adaptive"} <= set(a.attack.split(","))]
    assert board and board[0].n >= 1000
    assert any(a.attack == "aa" and a.n >= 200 for a in runs)
    assert any(a.eps_sweep and {"fgsm", "pgd"} <= set(a.attack.split(",")) for a in runs)
    assert all(args.defense in ("pgd-at", ["pgd-at"]) for args in parsed if args.command != "leaderboard")
    assert by_command["check"][0].update_baseline and by_command["check"][0].reason
