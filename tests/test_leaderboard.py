"""The committed leaderboard is exactly what `bench leaderboard` makes from the committed records."""

import re

import pytest

from bench.records.run_record import load_run_records
from bench.reporting import markdown as leaderboard
from bench.reporting import rows as board_rows
from defenses import published
from tests.conftest import COMMITTED, board_labels, leaderboard_of_committed
from tests.synthetic import attack, record, typed


@pytest.fixture(scope="module")
def regenerated(committed, tmp_path_factory):
    """`bench leaderboard` over a copy of the committed records and audits only."""
    return leaderboard_of_committed(committed, tmp_path_factory.mktemp("results"))


def test_committed_leaderboard_table_and_plots_regenerate_byte_for_byte(regenerated, committed):
    assert (regenerated / "LEADERBOARD.md").read_bytes() == (committed / "LEADERBOARD.md").read_bytes()
    assert (regenerated / "results.csv").read_bytes() == (committed / "results.csv").read_bytes()
    made = sorted(p.name for p in (regenerated / "plots").glob("*.png"))
    assert made == sorted(p.name for p in (committed / "plots").glob("*.png"))
    for name in made:
        assert (regenerated / "plots" / name).read_bytes() == (committed / "plots" / name).read_bytes(), name


def test_rendering_twice_gives_the_same_bytes(committed):
    records = load_run_records(committed / "runs")
    markdown, plots = leaderboard.render(records)
    again, plots_again = leaderboard.render(list(reversed(records)))  # nor does the records' order matter
    assert markdown == again and plots == plots_again
    ranked_rows = re.findall(r"^\| \d+ ", markdown, re.M)
    assert len(ranked_rows) >= len({r.model.defense for r in records if r.model.defense}) and plots  # a row each


def _details(markdown: str, label: str) -> str:
    start = markdown.index(f". `{label}` ", markdown.index("### Details"))
    return markdown[start:].split("\n#### ")[0]


def _budget_tables(section: str) -> dict[str, list[str]]:
    """The ranked rows of each training budget's table in a board section (one budget: no headings)."""
    tables: dict[str, list[str]] = {}
    budget = "recipe"
    for line in section.splitlines():
        if heading := re.match(r"### Training budget `([^`]+)`", line):
            budget = heading.group(1)
        elif re.match(r"\| \d+ ", line):
            tables.setdefault(budget, []).append(line)
    return tables


def test_every_committed_checkpoint_has_a_short_row_and_details_with_every_attack_and_an_eps_plot(committed):
    text = (committed / "LEADERBOARD.md").read_text()
    section = text.split("## fashion-mnist — L∞ ε = 0.1")[1].split("\n## ")[0]
    tables = _budget_tables(section)
    rows = tables.pop("recipe")
    assert sorted(re.search(r"`([^`]+)`", row).group(1) for row in rows) == board_labels()
    # the full-budget rows fill in as issue 30's evaluation commits each record: every row is a
    # committed full checkpoint on the board's 1000 points, its official AutoAttack may come later
    full = tables.pop("full", [])
    assert not tables, f"a table of an unexpected budget: {list(tables)}"
    stems = {p.stem for p in (COMMITTED.parent / "fashion-mnist-full").glob("*.pt")}
    assert {re.search(r"`([^`]+)`", row).group(1) for row in full} <= stems
    for row in full + rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        # #, checkpoint, arch, clean, AutoAttack, worst case, certified, true robust ∈, n, vs next row, audit
        assert len(cells) == 11, row
        assert cells[3] != "–" and "**" in cells[5] and int(cells[8]) >= 1000, row
        assert row in full or cells[4] != "–", row
        worst = float(re.search(r"\*\*([\d.]+)\*\*", cells[5]).group(1))
        low = float(cells[6].split()[0]) if cells[6] != "–" else 0.0
        assert cells[7].startswith(f"[{cells[6].split()[0] if cells[6] != '–' else '0'}, {worst:.1f}]"), row
        assert low <= worst, row
        label = re.search(r"`([^`]+)`", cells[1]).group(1)
        details = _details(section, label)
        names = ("FGSM", "PGD", "C&W") + (() if row in full else ("AutoAttack",))
        assert all(re.search(rf"{name} \d+\.\d", details) for name in names), label
        if row not in full:  # a full row's ε-curve comes with its eps-sweep records
            plot = re.search(r"\[ε\]\((plots/[^)]+)\)", details).group(1)
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
    markdown, _ = leaderboard.render(typed(masked, good))
    lines = [line for line in markdown.splitlines() if re.match(r"\| \d+ ", line)]
    assert "`good`" in lines[0] and "`masked`" in lines[1]
    assert re.search(r"\] ⚠ +\|", lines[1]) and "⚠" not in lines[0]  # the failed check shows in the ranking
    assert "⚠ black-box" in _details(markdown, "masked")
    assert "- `masked` black-box: Square broke 10 of 60 points" in markdown


def test_neighbouring_rows_are_told_distinguishable_only_when_a_paired_test_says_so():
    n = 200
    strong = record({"pgd": attack("1" * 120 + "0" * 80, "pgd")}, sha="a" * 64, label="strong", file="1.json")
    # 118 of the same robust points and 2 others: a 2-point gap that a paired test cannot separate
    close = record({"pgd": attack("1" * 116 + "0" * 4 + "11" + "0" * 78, "pgd")}, sha="b" * 64, label="close",
                   file="2.json")
    weak = record({"pgd": attack("1" * 60 + "0" * 140, "pgd")}, sha="c" * 64, label="weak", file="3.json")
    markdown, _ = leaderboard.render(typed(weak, close, strong))
    lines = [line for line in markdown.splitlines() if re.match(r"\| \d+ ", line)]
    assert ["strong" in lines[0], "close" in lines[1], "weak" in lines[2]] == [True] * 3
    assert re.search(r"\| no \(p=0\.69\) +\|", lines[0]) and "| yes (p=" in lines[1]
    assert re.search(r"\| – +\| not audited", lines[2])
    # exact: 2·P(X ≥ 4 | 6, ½) = 0.6875
    assert "not distinguishable from `close` (p=0.69, 4:2 of n=200)" in _details(markdown, "strong")
    assert "distinguishable from `weak` (p=" in _details(markdown, "close") and "58:0 of n=200" in markdown
    assert f"of n={n}" not in _details(markdown, "weak")  # the last row has no next row


def test_mcnemar_exact_matches_hand_computed_values():
    from bench.stats import mcnemar_exact

    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(10, 0) == pytest.approx(2 / 1024)
    assert mcnemar_exact(4, 2) == mcnemar_exact(2, 4) == pytest.approx(2 * 22 / 64)


def test_the_headline_is_on_the_full_set_and_attacks_on_subsets_count_where_they_ran():
    """fgsm and pgd on 1000 points, the official aa and an adaptive attack on the first 200: the
    worst case is on all 1000, where the subset attacks ran they count too; aa found nothing the
    full-set attacks missed, the adaptive attack 3."""
    flags = "1" * 700 + "0" * 300
    big = record({"fgsm": attack(flags, "fgsm"), "pgd": attack(flags, "pgd")}, label="m", file="1.json")
    aa_flags = flags[:200]
    adaptive_flags = "000" + flags[3:200]
    small = record({"aa": attack(aa_flags, "aa"), "ra-aux": attack(adaptive_flags, "ra-aux")}, label="m",
                   file="2.json", date="2026-01-02T00:00:00Z")
    small["attacks"]["ra-aux"]["adaptive"] = True
    current, _ = board_rows.build_rows(typed(big, small))
    (row,) = current[("fashion-mnist", "linf", 0.1)]
    assert (row.worst.count, row.worst.n) == (697, 1000)
    assert row.beyond == {"aa": board_rows.Beyond(0, 200), "ra-aux": board_rows.Beyond(3, 200)}
    markdown, _ = leaderboard.render(typed(big, small))
    line = next(line for line in markdown.splitlines() if line.startswith("| 1 "))
    assert "100.0 (n=200)" in line and "**69.7** [" in line and "| 1000 |" in line
    assert "attacks on a subset: aa +0 of 200, ⚠ ra-aux +3 of 200" in _details(markdown, "m")


def test_the_official_autoattack_and_aa_fast_are_compared_per_example_under_the_table():
    flags = "1" * 10
    fast = record({"aa-fast": attack("0" + flags[1:], "aa-fast")}, label="m", file="1.json")
    official = record({"aa": attack("1" + "0" + flags[2:], "aa")}, label="m", file="2.json")
    markdown, _ = leaderboard.render(typed(fast, official))
    assert ("- `m`, 10 points: aa broke 1 that aa-fast left robust (test index 1); aa-fast broke 1 that aa left "
            "robust.") in markdown


def test_a_number_from_an_older_version_of_its_attack_says_so_in_the_details():
    """The column takes the record on the most points whatever version of the attack it ran; the
    details name the ones that are not what a rerun would run today (synthetic records are v1)."""
    from bench.attacks.base import current_protocol

    flags = "1" * 8 + "0" * 2
    r = record({"fgsm": attack(flags, "fgsm"), "pgd": attack(flags, "pgd"), "aa-fast": attack(flags, "aa-fast")},
               label="m")
    assert current_protocol("fgsm") == "fgsm/v1" and current_protocol("pgd") != "pgd/v1"
    assert current_protocol("no-such-attack") is None and current_protocol("external") is None
    markdown, _ = leaderboard.render(typed(r))
    details = _details(markdown, "m")
    assert (f"- from an older protocol version: aa-fast (aa-fast/v1; now {current_protocol('aa-fast')}), "
            f"pgd (pgd/v1; now {current_protocol('pgd')})") in details
    assert "fgsm (" not in details


def test_a_number_from_attacks_in_bf16_is_flagged_in_the_details():
    """bf16 attacks miss points fp32 breaks (benchmarks/bf16_check.py): a row never shows such a
    number without saying so; fp32 numbers beside it are not named."""
    flags = "1" * 8 + "0" * 2
    fp32 = record({"fgsm": attack(flags, "fgsm")}, label="m", file="1.json")
    bf16 = record({"pgd": attack(flags, "pgd")}, label="m", file="2.json")
    bf16["provenance"]["precision"] = "bf16"
    details = _details(leaderboard.render(typed(fp32, bf16))[0], "m")
    assert "- ⚠ attacks not run in IEEE fp32, whose numbers may be too high" in details
    assert "docs/performance.md): pgd (bf16)\n" in details
    assert "attacks not run in IEEE fp32" not in _details(leaderboard.render(typed(fp32))[0], "m")


def _budgeted(defense: str, flags: str, budget: str) -> dict:
    """A record of `defense`'s checkpoint trained under `budget` (its own file and sha256)."""
    full = budget != "recipe"
    r = record({"pgd": attack(flags, "pgd")}, label=defense, sha=("f" if full else "a") * 62 + defense.encode().hex()[:2])
    r["model"]["path"] = f"checkpoints/fashion-mnist{'-full' if full else ''}/{defense}-smallcnn.pt"
    r["model"]["training_budget"] = {"name": budget, "epochs": 15 if full else 3}
    return r


def test_full_budget_rows_rank_first_and_each_defense_is_compared_with_its_recipe():
    recipe = {"a": "1100", "b": "1000", "c": "1110"}  # ranking c, a, b
    full = {"a": "1111", "b": "1100", "c": "1110"}  # ranking a, c, b: one of three pairs swapped
    md, _ = leaderboard.render(typed(*[_budgeted(d, f, "recipe") for d, f in recipe.items()],
                                     *[_budgeted(d, f, "full") for d, f in full.items()]))
    assert md.index("### Training budget `full`") < md.index("### Training budget `recipe`")
    assert "Kendall's τ between the two rankings of these 3 defenses: 0.33." in md
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in md.splitlines() if re.match(r"\| `[abc]` +\| \d", line)}
    assert rows["`a`"] == ["50.0", "100.0", "+50.0", "2:0 of 4", "0.5"]
    assert rows["`c`"] == ["75.0", "75.0", "+0.0", "0:0 of 4", "1"]


def test_recipes_alone_have_no_budget_heading_and_no_comparison():
    md, _ = leaderboard.render(typed(_budgeted("a", "1100", "recipe"), _budgeted("b", "1000", "recipe")))
    assert "Training budget" not in md and "Kendall" not in md


def _relative_links(text: str) -> list[str]:
    """Every link target of a Markdown or HTML board that is a file beside it (not a URL, not #anchor)."""
    found = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'(?:href|src)="([^"]+)"', text)
    return [t for t in found if not t.startswith(("#", "http://", "https://", "data:"))]


def test_your_runs_rank_beside_the_committed_board_without_copying_and_every_link_resolves(tmp_path, committed):
    """`bench leaderboard --results-dir mine --with-committed`: the committed records are read in place,
    the header names both folders, and every link of both pages leads to a file that exists."""
    from bench.cli import main

    mine = tmp_path / "mine"
    assert main(["run", "--model", "examples.toy_models:plain_smallcnn", "--weights",
                 str(COMMITTED / "pgd-at-smallcnn.pt"), "--label", "my-net", "--attack", "fgsm", "--n", "10",
                 "--results-dir", str(mine), "--quiet"]) == 0
    own = sorted(p.name for p in mine.glob("*.json"))
    assert main(["leaderboard", "--results-dir", str(mine), "--with-committed", "--html"]) == 0
    assert sorted(p.name for p in mine.glob("*.json")) == own  # nothing copied in
    board = (mine / "LEADERBOARD.md").read_text()
    count = len(list((committed / "runs").glob("*.json")))
    assert (f"from {len(own)} run records in this folder and {count} in `results/runs/` (the suite's committed "
            "records, read in place)") in board
    assert "`my-net`" in board and all(f"`{name}`" in board for name in published("fashion-mnist"))
    for page in ("LEADERBOARD.md", "LEADERBOARD.html"):
        links = _relative_links((mine / page).read_text())
        assert any("audits/" in link for link in links), page  # the committed audit reports, linked in place
        assert [link for link in links if not (mine / link.split("#")[0]).is_file()] == [], page


def test_the_committed_boards_links_resolve(committed):
    for page in ("LEADERBOARD.md",):
        links = _relative_links((committed / page).read_text())
        assert links and [link for link in links if not (committed / link.split("#")[0]).is_file()] == []
