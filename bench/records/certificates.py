"""The verifier's side of a checkpoint's records: the best certificate, the bracket it makes with the worst case,
and, where a method decides every point exactly, each attack's gap to the truth.

A certificate and an attack may come from different records of the same checkpoint; a point certified
in one and broken in another is a contradiction (a bug in an attack's verification or in the verifier)
that stops the leaderboard and `bench audit`, naming the point, the attack and the method: it is never
published.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.errors import BenchError
from bench.records.run_record import RunRecord
from bench.stats import Proportion


@dataclass(frozen=True)
class Certified:
    """One method's certificates for a row, from the record that certified the most points with it."""

    method: str
    exact: bool
    certified: dict[int, bool]  # test-set index → proven robust
    refuted: dict[int, bool]  # test-set index → proven not robust (a misclassified point of the ball found)

    @property
    def proportion(self) -> Proportion:
        return Proportion(sum(self.certified.values()), len(self.certified))

    @property
    def undecided(self) -> int:
        return sum(not (c or r) for c, r in zip(self.certified.values(), self.refuted.values(), strict=True))

    @property
    def decides_all(self) -> bool:
        return self.exact and self.undecided == 0


@dataclass(frozen=True)
class ExactGap:
    """An attack against the exact decision on the points both cover: the points it leaves robust that
    are in truth not robust (the attack's miss), by test-set index."""

    attack: str
    shared: int
    robust: int  # robust under the attack, of `shared`
    truly_robust: int  # certified, of `shared`
    missed: list[int]


def certificates(records: list[RunRecord]) -> dict[str, Certified]:
    """Per method, the certificates of the record that ran it on the most points (the newest among those)."""
    chosen: dict[str, Certified] = {}
    for r in sorted(records, key=lambda r: r.order, reverse=True):
        for method, res in r.certified.items():
            if method not in chosen or r.n > len(chosen[method].certified):
                chosen[method] = Certified(method, res.exact, r.by_index(res.flags), r.by_index(res.refuted))
    return chosen


def best(certs: dict[str, Certified]) -> Certified | None:
    """The method that certified the largest share (an exact one first on ties)."""
    return max(certs.values(), key=lambda c: (c.proportion.value, c.exact, c.method), default=None)


def refuse_contradictions(certs: dict[str, Certified], broken_by: dict[str, dict[int, bool]], label: str) -> None:
    """Stop (the board, the audit) when any attack (label → robust flag by test-set index) broke a certified point."""
    for method, cert in sorted(certs.items()):
        for attack, flags in sorted(broken_by.items()):
            for i, proven in sorted(cert.certified.items()):
                if proven and flags.get(i) is False:
                    raise BenchError(f"{label}: point #{i} is certified by {method} but broken by {attack}: a bug "
                                     "in the attack or the verifier; nothing is published")


def exact_gaps(cert: Certified, attacks: dict[str, dict[int, bool]]) -> list[ExactGap]:
    """Each attack's robust count against the exact one on the points both decided (an exact method that
    left points undecided is compared on the decided ones only)."""
    decided = {i for i in cert.certified if cert.certified[i] or cert.refuted[i]}
    gaps = []
    for attack, flags in attacks.items():
        shared = sorted(decided & flags.keys())
        gaps.append(ExactGap(attack, len(shared), sum(flags[i] for i in shared),
                             sum(cert.certified[i] for i in shared),
                             [i for i in shared if flags[i] and cert.refuted[i]]))
    return gaps
