"""Every `bench ...` command the README, CONTRIBUTING and docs/ show is checked against the real
argument parser, so a renamed or removed flag fails here instead of misleading a reader.

Command lines in code blocks must parse completely (`a | b | c` alternatives expand: `bench ls
attacks | defenses` is `bench ls attacks` and `bench ls defenses`); inline `bench ...` mentions are
fragments, so their command must exist and each `--flag` they name must belong to it."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from bench.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md")),
         *sorted((REPO / "examples").rglob("*.md"))]
COMMAND = re.compile(r"^(?:\$ )?(?:\w+=\S+ )*(?:\S*/)?bench ")
INLINE = re.compile(r"`((?:\w+=\S+ )*bench [^`]+)`")


def _shown(page: Path) -> tuple[list[str], list[str]]:
    """(command lines of code blocks, inline mentions) on one page."""
    blocks: list[str] = []
    inline: list[str] = []
    in_block = False
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        text = lines[i].strip()
        if text.startswith("```"):
            in_block = not in_block
        elif in_block and COMMAND.match(text):
            while text.endswith("\\") and i + 1 < len(lines):
                i += 1
                text = text[:-1] + " " + lines[i].strip()
            blocks.append(text)
        elif not in_block:
            inline += INLINE.findall(lines[i])
        i += 1
    return blocks, inline


def _argv(command: str) -> list[list[str]]:
    """The argument vectors a shown command stands for (after `bench`)."""
    words = shlex.split(command.removeprefix("$ "), comments=True)
    while words and re.match(r"^\w+=", words[0]):
        words.pop(0)
    words = words[1:]
    alternatives: list[list[str]] = [[]]
    for word in words:
        if word == "|":
            alternatives.append([])
        else:
            alternatives[-1].append(word)
    first = alternatives[0]
    return [first] + [first[:-1] + alternative for alternative in alternatives[1:]]


def _subparser(parser: argparse.ArgumentParser, words: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """The parser of the (nested) command that `words` start with, and the words after it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and words and words[0] in action.choices:
            return _subparser(action.choices[words[0]], words[1:])
    return parser, words


SHOWN = [(page.relative_to(REPO).as_posix(), kind, command)
         for page in PAGES for kind, commands in zip(("block", "inline"), _shown(page), strict=True)
         for command in commands]


def test_the_pages_show_commands() -> None:  # the extraction itself must not silently find nothing
    assert sum(kind == "block" for _, kind, _ in SHOWN) >= 30
    assert sum(kind == "inline" for _, kind, _ in SHOWN) >= 40


def _block_problems(command: str) -> list[str]:
    problems = []
    for argv in _argv(command):
        error = io.StringIO()
        try:
            with contextlib.redirect_stderr(error), contextlib.redirect_stdout(io.StringIO()):
                build_parser().parse_args(argv)
        except SystemExit as exc:
            if exc.code != 0:
                problems.append(f"`bench {' '.join(argv)}`: {error.getvalue().strip()}")
    return problems


def _inline_problems(command: str) -> list[str]:
    problems = []
    for argv in _argv(command):
        parser, rest = _subparser(build_parser(), argv)
        if parser.prog == "bench" and rest and not rest[0].startswith(("-", "<")):
            problems.append(f"no command {rest[0]!r}")
        known = {option for action in parser._actions for option in action.option_strings}
        unknown = sorted({word.split("=")[0] for word in rest if word.startswith("--")} - known)
        if unknown:
            problems.append(f"{unknown} not options of `{parser.prog}`")
    return problems


@pytest.mark.parametrize("page, command", [(p, c) for p, kind, c in SHOWN if kind == "block"])
def test_a_command_shown_in_a_code_block_parses(page: str, command: str) -> None:
    assert _block_problems(command) == [], page


@pytest.mark.parametrize("page, command", [(p, c) for p, kind, c in SHOWN if kind == "inline"])
def test_an_inline_command_names_a_real_command_and_real_flags(page: str, command: str) -> None:
    assert _inline_problems(command) == [], page


def test_a_renamed_flag_or_command_is_caught(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("Run `bench run --defnse pgd-at` or `bench frobnicate`:\n```\n"
                    "bench run --defnse pgd-at --attack aa   # comment\nbench ls attacks | defenses | gadgets\n```\n")
    blocks, inline = _shown(page)
    assert [len(_block_problems(c)) for c in blocks] == [1, 1]
    assert [len(_inline_problems(c)) for c in inline] == [1, 1]


def test_docs_attacks_lists_every_registered_attack() -> None:
    from bench.attacks import ATTACKS

    table = (REPO / "docs" / "attacks.md").read_text().split("## Attacks", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`([a-z0-9-]+)(?:[:\[][^`]*)?`", table))
    assert set(ATTACKS.names()) - listed == set()


def test_every_dataset_option_lists_the_registered_datasets() -> None:
    from bench.data import DATASETS

    found = 0
    for name in ("run", "audit", "verify-adv", "check", "sweep"):
        parser, _ = _subparser(build_parser(), [name])
        help_text = next(a.help for a in parser._actions if "--dataset" in a.option_strings) or ""
        assert all(dataset in help_text for dataset in DATASETS.names()), (name, help_text)
        found += 1
    assert found == 5
