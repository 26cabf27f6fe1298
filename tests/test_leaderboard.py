"""The committed leaderboard is exactly what `bench leaderboard` makes from the committed records."""

import re
import shutil

import pytest

from bench import leaderboard
from bench.cli import main
from bench.schema import load_records
from defenses import DEFENSES
from tests.synthetic import attack, record


@pytest.fixture(scope="module")
def regenerated(committed, tmp_path_factory):
    """`bench leaderboard` over a copy of the committed records and audits only."""
    root = tmp_path_factory.mktemp("results")
    shutil.copytree(committed / "runs", root / "runs")
    if (committed / "audits").is_dir():
        shutil.copytree(committed / "audits", root / "audits")
    assert main(["leaderboard", "--results-dir", str(root / "runs")]) == 0
    return root


def test_committed_leaderboard_table_and_plots_regenerate_byte_for_byte(regenerated, committed):
    assert (regenerated / "LEADERBOARD.md").read_bytes() == (committed / "LEADERBOARD.md").read_bytes()
    assert (regenerated / "results.csv").read_bytes() == (committed / "results.csv").read_bytes()
    made = sorted(p.name for p in (regenerated / "plots").glob("*.png"))
    assert made == sorted(p.name for p in (committed / "plots").glob("*.png"))
    for name in made:
        assert (regenerated / "plots" / name).read_bytes() == (committed / "plots" / name).read_bytes(), name


def test_rendering_twice_gives_the_same_bytes(committed):
    records = load_records(committed / "runs")
    assert leaderboard.render(records) == leaderboard.render(records)


def test_every_committed_checkpoint_has_a_row_with_every_column_and_an_eps_plot(committed):
    text = (committed / "LEADERBOARD.md").read_text()
    section = text.split("## fashion-mnist — L∞ ε = 0.1")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if re.match(r"\| \d+ ", line)]
    defenses = [name for name, d in DEFENSES.items() if "fashion-mnist" in d.recipes]
    assert sorted(re.search(r"`([^`]+)`", row).group(1) for row in rows) == sorted(defenses)
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert all(cells[i] != "–" for i in range(4, 9)), row  # clean, FGSM, PGD, C&W, AutoAttack
        assert "**" in cells[10], row  # worst case
        assert "[ε](plots/" in cells[-1], row
        plot = re.search(r"\[ε\]\((plots/[^)]+)\)", cells[-1]).group(1)
        assert (committed / plot).is_file()


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
