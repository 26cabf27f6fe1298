"""Sanity checks computed from run records; failures become marks on the leaderboard.

Each check compares per-example flags of the same test points, so a difference is a statement
about the attack or the model, not about which points were drawn. The rules:

- ε curve: robust accuracy must not rise as ε grows (one-sided exact sign test on the points
  robust at the larger ε but broken at the smaller one vs the reverse, α = 0.05), and at an ε
  large enough to move every input to the same image (L∞ 0.5, L2 0.5·√d for inputs in [0, 1])
  it must not exceed the largest class share of the points (95% Wilson lower bound above it).
- Attack strength: more steps × restarts of the same attack must not raise robust accuracy
  (same sign test between consecutive strengths).
- Black box vs white box: black-box attacks (Square, long Square, transfer from a surrogate) must
  not break more than 1% of the points every white-box attack left robust (95% Wilson lower bound
  above 1%); AutoAttack's Square runs only on those.
- Single step vs iterative: FGSM must not break more than 1% of the points every iterative
  white-box attack left robust (Carlini et al.'s "iterative attacks beat single-step ones").
- Random noise: the `noise` baseline (many random draws of the ε-ball) must not break more than 1%
  of the points every white-box attack left robust.
- Unbounded ε: where every image is reachable (L∞ ε = 1, L2 ε = √d), the worst case must leave at
  most 1% of the points robust (95% Wilson lower bound above it fails): attacks reach 100% success.
- AutoAttack's own checks: any warning it raised (randomness, softmax output, zero gradients).
- Adaptive attacks run: a registered defense's row must have run what `adaptive` means for it (the
  attacks its structure calls for, transfer, long Square); until then its worst case is an upper
  bound those attacks may lower (a masking defense leads every table they are missing from).
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass

from bench.attacks.base import Role, adaptive_attacks_for, has_role
from bench.evaluation.committed import attack_context
from bench.records.curves import Curve, Point, class_share, eps_curves, strength_curves
from bench.records.run_record import RunRecord
from bench.stats import sign_test_greater, wilson_interval
from defenses import DEFENSES

ALPHA = 0.05
SQUARE_ALLOWANCE = 0.01


class Check(str, enum.Enum):
    """A check's stable identifier (what audit files store); `label` is what pages show."""

    EPS_CURVE = "eps-curve"
    STRENGTH = "steps"
    BLACK_BOX = "black-box"
    AUTOATTACK = "autoattack-warnings"
    AUTOATTACK_PROBE = "autoattack-probe"  # the audit runs AutoAttack's checks on the model itself
    GRADIENTS = "gradients"
    ADAPTIVE = "adaptive"
    BINARIZATION = "binarization"  # the audit's active test of attack strength (bench.auditing.binarization)
    SINGLE_STEP = "single-step"
    NOISE = "noise"
    UNBOUNDED = "unbounded-eps"
    ADAPTIVE_RAN = "adaptive-ran"

    @property
    def label(self) -> str:
        return LABELS.get(self, self.value)


LABELS = {Check.EPS_CURVE: "ε-curve", Check.AUTOATTACK: "AA checks", Check.AUTOATTACK_PROBE: "AA model checks",
          Check.UNBOUNDED: "unbounded ε", Check.ADAPTIVE_RAN: "adaptive attacks run"}  # the rest show their identifier


@dataclass(frozen=True)
class CheckResult:
    check: Check
    passed: bool
    detail: str


def _flips(weaker: dict[int, bool], stronger: dict[int, bool]) -> tuple[int, int]:
    """(robust only under the stronger setting, robust only under the weaker one) on shared points."""
    shared = weaker.keys() & stronger.keys()
    return (sum(stronger[i] and not weaker[i] for i in shared), sum(weaker[i] and not stronger[i] for i in shared))


def collapse_eps(norm: str, input_dim: int) -> float:
    """The ε at which every input in [0,1]^d can reach the constant 0.5 image."""
    return 0.5 if norm == "linf" else 0.5 * math.sqrt(input_dim)


def unbounded_eps(norm: str, input_dim: int) -> float:
    """The ε at which every input in [0,1]^d can reach every other image."""
    return 1.0 if norm == "linf" else math.sqrt(input_dim)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _first_rise(curve: Curve) -> tuple[Point, Point, int, int] | None:
    for weak, strong in zip(curve.points, curve.points[1:], strict=False):
        rises, falls = _flips(weak.flags(), strong.flags())
        if rises > falls and sign_test_greater(rises, falls) < ALPHA:
            return weak, strong, rises, falls
    return None


def eps_curve(records: list[RunRecord], norm: str, input_dim: int) -> CheckResult | None:
    """`records`: one checkpoint's records (any ε)."""
    found = eps_curves(records, norm)
    if not found:
        return None
    bound = collapse_eps(norm, input_dim)
    # the collapse bound is checked on the curve lowest at the largest ε (the worst case when a
    # sweep ran several attacks): one weak attack such as FGSM may legitimately stay above it
    strongest = min(found, key=lambda c: (-c.points[-1].x, c.points[-1].accuracy, c.attack)).attack
    passed = []
    for curve in found:
        rise = _first_rise(curve)
        if rise:
            weak, strong, gained, lost = rise
            return CheckResult(Check.EPS_CURVE, False, f"{curve.attack} robust accuracy rises from ε={weak.x:g} to "
                                                       f"ε={strong.x:g} ({gained} points gained, {lost} lost)")
        top = curve.points[-1]
        if curve.attack != strongest:
            continue  # a single weak attack (FGSM) may not reach the collapse; the worst case must
        if top.x >= bound:
            share = class_share(top.record)
            if wilson_interval(top.count, top.n)[0] > share:
                return CheckResult(Check.EPS_CURVE, False, f"{curve.attack} leaves {_pct(top.accuracy)} robust at "
                                                           f"ε={top.x:g}, where no classifier exceeds {_pct(share)}")
            passed.append(f"{curve.attack} {_pct(top.accuracy)} at ε={top.x:g}")
        else:
            passed.append(f"{curve.attack} falls up to ε={top.x:g} (collapse at {bound:g} not tested)")
    return CheckResult(Check.EPS_CURVE, True, "; ".join(passed))


def attack_strength(records: list[RunRecord], norm: str, eps: float) -> CheckResult | None:
    """`records`: one checkpoint's records."""
    found = strength_curves(records, norm, eps)
    if not found:
        return None
    for curve in found:
        rise = _first_rise(curve)
        if rise:
            weak, strong, gained, lost = rise
            return CheckResult(Check.STRENGTH, False, f"{curve.attack} robust accuracy rises from {weak.x:g} to "
                                                      f"{strong.x:g} steps×restarts ({gained} gained, {lost} lost)")
    names = sorted({c.attack for c in found})
    return CheckResult(Check.STRENGTH, True, f"{', '.join(names)}: no rise with more steps")


def _black_box_stage(component: str | None, label: str) -> bool:
    """Whether `broken_first_by` names a black-box stage of the attack `label` (AutoAttack's
    `aa/square`, or one of aa-fast's runs, `aa-fast/square/restart3`)."""
    if component is None or not component.startswith(f"{label}/"):
        return False
    return has_role(component[len(label) + 1:].split("/")[0], Role.BLACK_BOX)


Chosen = dict[str, RunRecord]  # attack label → the record it comes from (one checkpoint, one threat model)


def black_box(chosen: Chosen) -> CheckResult | None:
    """`chosen`: attack label → the record it comes from (one checkpoint, one threat model).

    A point counts against the model when Square broke it (standalone, or as AutoAttack's last
    stage, which runs only where APGD and FAB failed) and every white-box attack left it robust.
    """
    square_broke: set[int] = set()
    square_ran: set[int] = set()
    white_robust: dict[int, bool] = {}
    for label, record in chosen.items():
        flags = record.flags_by_index(label)
        clean = record.clean_indices()
        first = record.first_broken_by()
        is_square = has_role(record.attacks[label].attack, Role.BLACK_BOX)
        if is_square or any(has_role(stage, Role.BLACK_BOX) for stage in record.attacks[label].stages if stage):
            square_ran |= clean
        for i in clean:
            by_square = not flags[i] and (is_square or _black_box_stage(first[i], label))
            if by_square:
                square_broke.add(i)
            if not is_square:
                white_robust[i] = white_robust.get(i, True) and (flags[i] or by_square)
    if not square_ran:
        return None
    survivors = [i for i, robust in sorted(white_robust.items()) if robust and i in square_ran]
    if not survivors:
        return CheckResult(Check.BLACK_BOX, True, "no point survived the white-box attacks")
    beaten = sum(i in square_broke for i in survivors)
    low = wilson_interval(beaten, len(survivors))[0]
    adaptive_black_box = any(r.attacks[label].adaptive and has_role(r.attacks[label].attack, Role.BLACK_BOX)
                             for label, r in chosen.items())
    names = "Square and transfer attacks" if adaptive_black_box else "Square"
    detail = f"{names} broke {beaten} of {len(survivors)} points the white-box attacks left robust"
    return CheckResult(Check.BLACK_BOX, low <= SQUARE_ALLOWANCE, detail)


def _distinct(messages: list[str]) -> list[str]:
    """One line per kind of warning: AutoAttack repeats a check per batch with other counts."""
    kinds: dict[str, list[str]] = {}
    for m in messages:
        kinds.setdefault(re.sub(r"\d+", "#", m.split(" See ")[0]), []).append(m.split(" See ")[0])
    return [same[0] + (f" (and {len(same) - 1} more like it)" if len(same) > 1 else "") for same in kinds.values()]


def autoattack_warnings(chosen: Chosen) -> CheckResult | None:
    ran = [label for label, r in chosen.items() if has_role(r.attacks[label].attack, Role.AUTOATTACK_FAMILY)]
    if not ran:
        return None
    warned = sorted({w for label in ran for w in chosen[label].attacks[label].warnings})
    if warned:
        return CheckResult(Check.AUTOATTACK, False, "; ".join(_distinct(warned)))
    return CheckResult(Check.AUTOATTACK, True, "no warnings")


def _beyond_white_box(chosen: Chosen, others: Role, excluded: frozenset[Role],
                      check: Check, what: str, whom: str) -> CheckResult | None:
    """Points the attacks playing `others` broke that every other white-box attack (playing none of
    `excluded`, not black-box) left robust, on the clean-correct points both ran on."""
    other_ran: set[int] = set()
    other_broke: set[int] = set()
    white_robust: dict[int, bool] = {}
    for label, record in chosen.items():
        name = record.attacks[label].attack
        flags = record.flags_by_index(label)
        clean = record.clean_indices()
        if has_role(name, others):
            other_ran |= clean
            other_broke |= {i for i in clean if not flags[i]}
        elif not any(has_role(name, role) for role in excluded | {Role.BLACK_BOX}):
            for i in clean:
                white_robust[i] = white_robust.get(i, True) and flags[i]
    if not other_ran or not white_robust:
        return None
    survivors = [i for i, robust in sorted(white_robust.items()) if robust and i in other_ran]
    if not survivors:
        return CheckResult(check, True, f"no point survived the {whom}")
    beaten = sum(i in other_broke for i in survivors)
    low = wilson_interval(beaten, len(survivors))[0]
    return CheckResult(check, low <= SQUARE_ALLOWANCE,
                       f"{what} broke {beaten} of {len(survivors)} points the {whom} left robust")


def single_step(chosen: Chosen) -> CheckResult | None:
    return _beyond_white_box(chosen, Role.SINGLE_STEP, frozenset({Role.SINGLE_STEP, Role.NOISE_BASELINE}),
                             Check.SINGLE_STEP, "FGSM",
                             "iterative attacks")


def noise_baseline(chosen: Chosen) -> CheckResult | None:
    return _beyond_white_box(chosen, Role.NOISE_BASELINE, frozenset({Role.NOISE_BASELINE}), Check.NOISE,
                             "random noise", "white-box attacks")


def unbounded(records: list[RunRecord], norm: str, input_dim: int) -> CheckResult | None:
    """`records`: one checkpoint's records (any ε); the strongest evaluation at the unbounded ε
    decides (a lone FGSM run there may legitimately fall short)."""
    top = unbounded_eps(norm, input_dim)
    found = [r for r in records if r.threat.norm.value == norm and r.threat.eps >= top * (1 - 1e-9)]
    if not found:
        return None
    record = min(found, key=lambda r: (r.worst_case.count / r.n, r.file or ""))
    robust, n = record.worst_case.count, record.n
    attacks = ", ".join(record.attacks)
    detail = f"{attacks} left {robust} of {n} points robust at ε={top:g}, where every image is reachable"
    return CheckResult(Check.UNBOUNDED, wilson_interval(robust, n)[0] <= SQUARE_ALLOWANCE, detail)


def adaptive_unrun(ran: set[str], dataset: str, defense: str) -> list[str]:
    """The attacks `adaptive` stands for with this registered defense that are not among `ran`."""
    return [spec.name for spec in adaptive_attacks_for(attack_context(dataset, defense)) if spec.name not in ran]


def adaptive_ran(chosen: Chosen, dataset: str, defense: str | None) -> CheckResult | None:
    """Whether a registered defense's row ran its adaptive attacks; None for a checkpoint of no
    registered defense (nothing says which attacks its structure calls for)."""
    if defense is None or defense not in DEFENSES:
        return None
    ran = {record.attacks[label].attack for label, record in chosen.items()}
    missing = adaptive_unrun(ran, dataset, defense)
    if missing:
        return CheckResult(Check.ADAPTIVE_RAN, False, f"not run yet: {', '.join(missing)} (the worst case is an "
                                                      f"upper bound they may lower)")
    return CheckResult(Check.ADAPTIVE_RAN, True, f"every attack `adaptive` means for {defense} ran")


def record_checks(history: list[RunRecord], chosen: Chosen, norm: str, eps: float,
                  input_dim: int) -> list[CheckResult]:
    """Every check computed from records: `history` is all of one checkpoint's records (ladders,
    any ε), `chosen` the attack label → record of the table's threat model."""
    found = (eps_curve(history, norm, input_dim), attack_strength(history, norm, eps), black_box(chosen),
             single_step(chosen), noise_baseline(chosen), unbounded(history, norm, input_dim),
             autoattack_warnings(chosen))
    return [c for c in found if c is not None]
