"""docs/claims.md: each paper's claim against the committed records, by a fixed rule."""

from bench.reporting import claims
from bench.reporting.claims import Comparison, Side, compare, verdict
from defenses.training.registry import DEFENSES


def test_the_committed_page_is_what_the_committed_records_make(committed):
    assert claims.render(committed / "runs") == claims.PAGE.read_text(), "stale: run `make claims`"


def test_every_claim_names_registered_defenses_of_one_paper():
    for claim in claims.CLAIMS:
        assert DEFENSES.get(claim.defense).paper.startswith(claim.reference)
        assert DEFENSES.get(claim.baseline).published and claim.baseline != claim.defense


def test_compare_counts_the_shared_points_only_and_tests_the_discordant_ones():
    mine = {0: True, 1: True, 2: False, 3: True, 9: True}
    theirs = {0: True, 1: False, 2: False, 3: False, 4: False}
    c = compare("worst", mine, theirs)
    assert c is not None
    assert (c.defense, c.baseline) == (Side(3, 4), Side(1, 4))
    assert (c.only_defense, c.only_baseline) == (2, 0) and abs(c.p - 0.5) < 1e-12  # exact: 2 · 0.5²
    assert compare("worst", {1: True}, {2: True}) is None


def _c(gain_points: int, p: float) -> Comparison:
    return Comparison("m", Side(500 + gain_points, 1000), Side(500, 1000), max(gain_points, 0), max(-gain_points, 0), p)


def test_the_verdict_rule():
    assert verdict(_c(30, 0.001), _c(10, 0.2)).startswith("**supported**")
    assert verdict(_c(30, 0.001), _c(-5, 0.5)).startswith("**not supported**")  # the official AA says less
    assert verdict(_c(30, 0.2), None).startswith("**not supported**")  # within chance
    assert verdict(_c(-30, 0.001), None).startswith("**contradicted**")
    masked = verdict(_c(-9, 0.34), _c(35, 0.039))
    assert masked.startswith("**not supported**") and "official AutoAttack alone shows a gain" in masked
    assert verdict(None, None).startswith("not testable yet")


def test_a_verdict_waits_for_the_defenses_adaptive_attacks():
    """Full ancra once won "supported" on FGSM/PGD/C&W/aa-fast alone, before its adaptive attacks ran."""
    from bench.reporting.rows import prepare
    from tests.synthetic import attack, record, typed

    def row(defense: str, names: list[str], flags: str):
        r = record({n: attack(flags, n) for n in names}, label=defense, sha=defense[0] * 64, file=f"{defense}.json")
        r["model"]["arch"] = DEFENSES.get(defense).recipes["fashion-mnist"].arch
        return next(iter(prepare(typed(r), []).current.values()))[0]

    board = ["fgsm", "pgd", "cw", "aa-fast", "aa"]
    strong, weak = "1" * 90 + "0" * 10, "1" * 50 + "0" * 50
    masked = row("ancra", board, strong)
    assert claims.unrun(masked, "ancra") == ["ra-sum", "ra-aux", "ra-bpda", "transfer", "square-long"]
    trades = row("trades", [*board, "transfer", "square-long"], weak)
    assert claims.unrun(trades, "trades") == []
    claim = next(c for c in claims.CLAIMS if (c.defense, c.baseline) == ("ancra", "trades"))
    text = "\n".join(claims.block_text(b) for b in claims.claim_blocks(claim, {"full": [masked, trades]}))
    assert "lacks ra-sum, ra-aux, ra-bpda, transfer, square-long" in text
    assert "not testable yet" in text and "**supported**" not in text
