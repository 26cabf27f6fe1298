"""docs/claims.md: each paper's headline claim beside what this suite measures for the same comparison.

The claims are data (`CLAIMS`, in our words, from docs/defenses.md's sources); every number on the
page comes from the committed records through the leaderboard's rows and names the record file it
was read from, so the page is regenerated (`make claims`), never edited by hand, and a test checks
that it matches the committed records. A verdict is a rule applied to the largest training budget
at which both checkpoints are on the board (below), not a judgement made after seeing the numbers.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from bench.attacks import parse_attacks
from bench.attacks.base import Role, board_columns, with_role
from bench.auditing.checks import adaptive_unrun
from bench.auditing.report import load_audits
from bench.records.run_record import load_run_records
from bench.records.schema import REPO_ROOT
from bench.reporting.document import Block, Bullets, Heading, Paragraph, Table
from bench.reporting.markdown import block_text
from bench.reporting.rows import OFFICIAL, Row, TableKey, budget_order, by_budget, paired_flags, prepare
from defenses.training.registry import DEFENSES

DATASET = "fashion-mnist"
TABLE: TableKey = (DATASET, "linf", 0.1)
PAGE = REPO_ROOT / "docs" / "claims.md"
SIGNIFICANT = 0.05


@dataclass(frozen=True)
class Claim:
    paper: str  # the method's name as the paper gives it
    reference: str  # arXiv id
    defense: str  # our registered implementation
    baseline: str  # the registered defense the claim says it beats
    claim: str  # the headline in our words: dataset, architecture, attack, by how much
    here: str  # what differs in this suite's version of the comparison


CLAIMS = (
    Claim("ANCRA (TRADES variant)", "arXiv:2310.03358", "ancra", "trades",
          "ANCRA-TRADES on a ResNet-18, CIFAR-10, L∞ 8/255: 81.70% clean and 59.70% under AutoAttack "
          "standard (README), about 7 points above the best ResNet-18 on RobustBench without extra data "
          "(52.48%), so far above the TRADES it extends.",
          "Reverse attention takes a hard argmax inside the network, which can mask gradients; the adaptive "
          "attacks (PGD on the training loss, APGD on the first block's auxiliary logits and through a soft "
          "mask) count in the worst case."),
    Claim("ANCRA (PGD-AT variant)", "arXiv:2310.03358", "ancra-pgd", "pgd-at",
          "ANCRA-PGD on a ResNet-18, CIFAR-10, L∞ 8/255: 85.10% clean and 59.15% under AutoAttack standard, "
          "against 43.7% (AFD's table) to ≈ 48–50% (well-tuned, early-stopped) for PGD-AT on that architecture.",
          "As for the TRADES variant."),
    Claim("ANCRA (MART variant)", "arXiv:2310.03358", "ancra-mart", "mart",
          "ANCRA-MART on a ResNet-18, CIFAR-10, L∞ 8/255: 84.88% clean and 59.60% under AutoAttack standard, "
          "far above MART on that architecture.",
          "As for the TRADES variant."),
    Claim("AFD", "arXiv:2401.14707", "afd", "pgd-at",
          "Fine-tuning a naturally trained ResNet-18 on CIFAR-10 (L∞ 8/255) for 20 epochs, AFD reaches 84.88% "
          "clean and 47.40% under AutoAttack standard against 84.43% and 43.68% for PGD-AT in the authors' "
          "table (+3.7 points); TRADES from scratch is 48.52% in the same table.",
          "AFD fine-tunes our committed natural `standard` checkpoint (as the paper fine-tunes a natural "
          "model); PGD-AT trains from scratch for the same budget."),
    Claim("CLAF", "arXiv:2203.08959", "claf", "pgd-at",
          "A ResNet-18 on CIFAR-10 with 92.46% clean and 60.47% robust accuracy (README; presumably PGD-10 "
          "at 8/255), above adversarial training on both counts.",
          "The published code normalises images before a [0,1]-clamping attack, so its ε was about 1.6/255 in "
          "pixels; here normalisation is inside the model and ε is in pixels."),
    Claim("ASCL", "arXiv:2101.10027", "ascl", "pgd-at",
          "Adversarial supervised contrastive learning beats the state of the art by 2.6 points of robust "
          "accuracy (v1 abstract, CIFAR-10; the tables were not retrievable); the authors' own PGD-AT "
          "ResNet-18 baseline: 82.75% clean, 48.8% under AutoAttack.",
          "The baseline is the PGD-AT the paper's code compares against."),
    Claim("SPAT", "arXiv:2210.15068", "spat", "trades",
          "Self-paced weighting of hard class pairs on top of TRADES makes a network more robust than TRADES "
          "(CIFAR-10; the result tables were not retrievable, only the motivation figure: PGD-20 sends over 40% "
          "of a vanilla model's dog images to cat, 30.6% for SPAT), so only the direction can be checked.",
          "SPAT's deployed cosine logits are tiny (|c| ≲ 1); the adaptive attack on the training-scale "
          "logits counts in the worst case."),
)


@dataclass(frozen=True)
class Side:
    robust: int
    n: int

    @property
    def percent(self) -> float:
        return 100 * self.robust / self.n


@dataclass(frozen=True)
class Comparison:
    """One measure on the points both checkpoints were evaluated on, with an exact McNemar test."""

    measure: str
    defense: Side
    baseline: Side
    only_defense: int  # robust under the defense only
    only_baseline: int
    p: float

    @property
    def gain(self) -> float:
        return self.defense.percent - self.baseline.percent


def compare(measure: str, mine: dict[int, bool], theirs: dict[int, bool]) -> Comparison | None:
    test = paired_flags(mine, theirs)
    if test is None:
        return None
    shared = mine.keys() & theirs.keys()
    return Comparison(measure, Side(sum(mine[i] for i in shared), test.shared),
                      Side(sum(theirs[i] for i in shared), test.shared), test.here, test.there, test.p)


def comparisons(defense: Row, baseline: Row) -> list[Comparison]:
    """The official AutoAttack alone, then the worst case over every attack (adaptive ones included)."""
    found = []
    if OFFICIAL in defense.attack_flags and OFFICIAL in baseline.attack_flags:
        found.append(compare("official AutoAttack (`aa`)", defense.attack_flags[OFFICIAL],
                             baseline.attack_flags[OFFICIAL]))
    found.append(compare("worst case, every attack", defense.worst_flags, baseline.worst_flags))
    return [c for c in found if c is not None]


def verdict(worst: Comparison | None, official: Comparison | None) -> str:
    """Supported: more robust than the baseline in the worst case beyond chance, and not less robust
    under the official AutoAttack; contradicted: less robust beyond chance; otherwise not supported.
    Where the official AutoAttack alone shows a gain beyond chance that the worst case does not, the
    verdict says so: that gap is what the other attacks, the adaptive ones above all, found."""
    if worst is None:
        return "not testable yet: the two checkpoints share no evaluated points"
    if worst.gain > 0 and worst.p < SIGNIFICANT and (official is None or official.gain >= 0):
        found = "**supported** on Fashion-MNIST: more robust than the baseline beyond chance"
    elif worst.gain < 0 and worst.p < SIGNIFICANT:
        found = "**contradicted** on Fashion-MNIST: less robust than the baseline beyond chance"
    else:
        found = "**not supported** on Fashion-MNIST: no difference beyond chance"
    if official is not None and official.gain > 0 and official.p < SIGNIFICANT and not found.startswith("**supported"):
        found += (f"; the official AutoAttack alone shows a gain beyond chance ({official.gain:+.1f} points, "
                  f"p = {official.p:.2g}) that the worst case does not")
    return found


def _row(rows: list[Row], defense: str) -> Row | None:
    """The defense's checkpoint on its registered architecture (pgd-at also has an MLP at the recipe budget)."""
    arch = DEFENSES.get(defense).recipes[DATASET].arch
    return next((row for row in rows if row.defense == defense and row.arch == arch), None)


def unrun(row: Row, defense: str) -> list[str]:
    """The attacks of the claims' protocol the row lacks: the board's, the official AutoAttack and what
    `adaptive` means for the defense. A verdict never rests on a row without its adaptive attacks: a
    method that masks gradients wins every comparison its breaking attacks have not run in."""
    ran = {spec.name for label in row.attack_flags for spec in parse_attacks(label)}
    board = [name for _, name in board_columns()] + with_role(Role.FAST_AUTOATTACK)  # FGSM, PGD, C&W, aa, aa-fast
    return [name for name in board if name not in ran] + adaptive_unrun(ran, DATASET, defense)


def _percent(side: Side) -> str:
    return f"{side.percent:.1f} ({side.robust}/{side.n})"


def provenance(row: Row, budget: str) -> str:
    """Which record each of the row's numbers comes from: record file → the attacks read from it."""
    files: dict[str, list[str]] = {}
    for label, file in row.sources.items():
        files.setdefault(file, []).append(label)
    listed = "; ".join(f"`{file}` ({', '.join(labels)})" for file, labels in sorted(files.items()))
    return f"`{row.label}` at `{budget}` (sha256 {row.sha256[:12]}): {listed}"


def claim_blocks(claim: Claim, groups: dict[str, list[Row]]) -> list[Block]:
    body, decided, sources, missing = [], None, [], []
    for budget, rows in groups.items():  # the larger budgets first
        mine, theirs = _row(rows, claim.defense), _row(rows, claim.baseline)
        if mine is None or theirs is None:
            missing.append(budget)
            body.append((f"`{budget}`", "not on the board at this budget yet", "–", "–", "–", "–"))
            continue
        found = comparisons(mine, theirs)
        sources += [provenance(mine, budget), provenance(theirs, budget)]
        lacking = [f"`{row.label}` lacks {', '.join(names)}" for row, name in ((mine, claim.defense), (theirs, claim.baseline))
                   if (names := unrun(row, name))]
        if lacking:  # said first: the worst case below is an upper bound the missing attacks may lower
            body.append((f"`{budget}`", "not every attack has run yet: " + "; ".join(lacking), "–", "–", "–", "–"))
        body.append((f"`{budget}`", "clean", f"{100 * mine.clean.accuracy:.1f}", f"{100 * theirs.clean.accuracy:.1f}",
                     f"{100 * (mine.clean.accuracy - theirs.clean.accuracy):+.1f}", ""))
        for c in found:
            body.append((f"`{budget}`", c.measure, _percent(c.defense), _percent(c.baseline), f"{c.gain:+.1f}",
                         f"{c.only_defense}:{c.only_baseline}, p = {c.p:.2g}"))
        if lacking:
            missing.append(budget)
            continue
        if decided is None:
            official = next((c for c in found if c.measure.startswith("official")), None)
            worst = next((c for c in found if c.measure.startswith("worst")), None)
            pending = f"; provisional until `{'`, `'.join(missing)}` is complete on the board" if missing else ""
            decided = f"{verdict(worst, official)} (budget `{budget}`{pending})."
    return [Heading(2, f"{claim.paper} ({claim.reference}) against `{claim.baseline}`"),
            Paragraph(f"**Claim.** {claim.claim}"),
            Paragraph(f"**Here.** `{claim.defense}` against `{claim.baseline}`, Fashion-MNIST, the SmallCNN (ANCRA's "
                      f"with its reverse-attention blocks), L∞ ε = 0.1, the same trainer and training budget for "
                      f"both. {claim.here}"),
            Table(("budget", "measure", f"`{claim.defense}` %", f"`{claim.baseline}` %", "gain",
                   "robust under one only, exact McNemar"), tuple(body)),
            Paragraph(f"**Verdict.** {decided or 'not testable yet: neither checkpoint pair is on the board'}"),
            Paragraph("Records (results/runs/), per checkpoint: the file each attack's flags come from."),
            Bullets(tuple(sources))]


def page(groups: dict[str, list[Row]]) -> list[Block]:
    blocks: list[Block] = [
        Heading(1, "Each paper's claim, checked"),
        Paragraph("Generated by `make claims` from the committed records (results/runs/); do not edit. Each "
                  "paper's headline claim is on CIFAR-10 with a ResNet; what this suite can check is the same "
                  "comparison — the method against the baseline it says it beats — on Fashion-MNIST with the "
                  "SmallCNN, both trained by our trainer at the same budget and attacked identically. So a "
                  "verdict is about the comparison's direction here, not the paper's numbers."),
        Bullets((
            "Measures: clean accuracy; robust accuracy under the official AutoAttack (first 200 test points); the "
            "worst case over FGSM, PGD, C&W, aa-fast, the defense's adaptive attacks, transfer, the long Square "
            "and AutoAttack (first 1000 points) — robust only if every attack failed. Both on the points the "
            "two checkpoints share.",
            "Paired test: exact McNemar on the points robust under one checkpoint only.",
            f"Verdict rule, at the largest training budget where both checkpoints are on the board with every "
            f"attack above (the defense's adaptive ones included): supported "
            f"when the worst case is higher with p < {SIGNIFICANT} and the official AutoAttack is not lower; "
            f"contradicted when the worst case is lower with p < {SIGNIFICANT}; otherwise not supported.",
        )),
    ]
    for claim in CLAIMS:
        blocks += claim_blocks(claim, groups)
    return blocks


def render(runs: Path) -> str:
    board = prepare(load_run_records(runs), load_audits(runs.parent / "audits"))
    found = by_budget(board.current.get(TABLE, []))
    groups = {budget: found.get(budget, []) for budget in budget_order()}  # every budget, on the board yet or not
    return "\n".join(block_text(block) for block in page(groups)).rstrip() + "\n"


def main() -> int:
    PAGE.write_text(render(REPO_ROOT / "results" / "runs"))
    print(f"wrote {PAGE.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
