"""The committed leaderboard is exactly what `bench leaderboard` makes from the committed records."""

import re
import shutil

import pytest

from bench import leaderboard
from bench.cli import main
from bench.schema import load_records
from defenses import DEFENSES
from tests.conftest import REPO
from tests.synthetic import attack, record

RESULTS = REPO / "results"


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    shutil.copytree(RESULTS / "runs", root / "runs", ignore=shutil.ignore_patterns(".state"))
    if (RESULTS / "audits").is_dir():
        shutil.copytree(RESULTS / "audits", root / "audits")
    assert main(["leaderboard", "--results-dir", str(root / "runs")]) == 0
    return root


def test_committed_leaderboard_table_and_plots_regenerate_byte_for_byte(regenerated):
    assert (regenerated / "LEADERBOARD.md").read_bytes() == (RESULTS / "LEADERBOARD.md").read_bytes()
    assert (regenerated / "results.csv").read_bytes() == (RESULTS / "results.csv").read_bytes()
    made = sorted(p.name for p in (regenerated / "plots").glob("*.png"))
    assert made == sorted(p.name for p in (RESULTS / "plots").glob("*.png"))
    for name in made:
        assert (regenerated / "plots" / name).read_bytes() == (RESULTS / "plots" / name).read_bytes(), name


def test_rendering_twice_gives_the_same_bytes():
    records = load_records(RESULTS / "runs")
    assert leaderboard.render(records) == leaderboard.render(records)


def test_every_committed_checkpoint_has_a_row_with_every_column_and_an_eps_plot():
    text = (RESULTS / "LEADERBOARD.md").read_text()
    section = text.split("## fashion-mnist — L∞ ε = 0.1")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if re.match(r"\| \d+ ", line)]
    committed = [name for name, d in DEFENSES.items() if "fashion-mnist" in d.recipes]
    assert sorted(re.search(r"`([^`]+)`", row).group(1) for row in rows) == sorted(committed)
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert all(cells[i] != "–" for i in range(4, 9)), row  # clean, FGSM, PGD, C&W, AutoAttack
        assert "**" in cells[10], row  # worst case
        assert "[ε](plots/" in cells[-1], row
        plot = re.search(r"\[ε\]\((plots/[^)]+)\)", cells[-1]).group(1)
        assert (RESULTS / plot).is_file()


def test_rows_sort_by_worst_case_and_failed_checks_are_marked_not_hidden():
    good = record({"pgd": attack("1" * 60 + "0" * 40, "pgd")}, sha="a" * 64, label="good", file="1.json")
    aa_flags = "1" * 50 + "0" * 50
    first = [None] * 50 + ["masked/square"] * 10 + ["masked/apgd-ce"] * 40
    masked = record({"masked": attack(aa_flags, "aa", stages=["apgd-ce", "apgd-t", "fab-t", "square"])},
                    sha="b" * 64, label="masked", file="2.json", broken_first_by=first)
    masked["attacks"]["aa"] = masked["attacks"].pop("masked")
    masked["per_example"]["robust"]["aa"] = masked["per_example"]["robust"].pop("masked")
    masked["per_example"]["broken_first_by"] = [None] * 50 + ["aa/square"] * 10 + ["aa/apgd-ce"] * 40
    markdown, _ = leaderboard.render([masked, good])
    lines = [line for line in markdown.splitlines() if re.match(r"\| \d+ ", line)]
    assert "`good`" in lines[0] and "`masked`" in lines[1]
    assert "⚠ black-box" in lines[1]
    assert "- `masked` black-box: Square broke 10 of 60 points" in markdown
