"""Curves read from one checkpoint's records: robust accuracy against ε, and against attack strength.

The sanity checks and the plots both use these, so a plotted curve is exactly the one checked.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.records.run_record import RunRecord
from bench.records.schema import WORST_CASE

STRENGTH_FIELDS = ("steps", "restarts")


def class_share(record: RunRecord) -> float:
    """The largest class's share of a record's points: the accuracy of a constant classifier."""
    assert record.labels is not None, "records of schema 2 keep the labels"
    labels = record.labels.tolist()
    return max(Counter(labels).values()) / len(labels)


@dataclass(frozen=True)
class Point:
    x: float
    record: RunRecord
    attack: str  # the label inside `record`, or WORST_CASE

    @property
    def count(self) -> int:
        return (self.record.worst_case if self.attack == WORST_CASE else self.record.attacks[self.attack].robust).count

    def flags(self) -> dict[int, bool]:
        return self.record.flags_by_index(self.attack)

    @property
    def n(self) -> int:
        return self.record.n

    @property
    def accuracy(self) -> float:
        return self.count / self.n


@dataclass(frozen=True)
class Curve:
    attack: str  # the attack's name (its default configuration for ε curves)
    detail: str  # what is fixed along the curve
    points: list[Point]  # sorted by x, all on the same test points


def _newest(records: list[RunRecord]) -> list[RunRecord]:
    """Records with per-attack flags, oldest first."""
    return sorted((r for r in records if r.has_per_attack_flags), key=lambda r: r.order)


def eps_curves(records: list[RunRecord], norm: str) -> list[Curve]:
    """Per default-configuration attack, and for the worst case over a run's attacks: robust
    accuracy over ε on the set of points measured at the most ε values (the newest record wins
    at each ε). The worst case is that of one attack set, comparable across ε: the set swept at
    the most ε values; where a set with attacks beyond it (the adaptive ones, swept at fewer ε)
    has a curve too, the largest such set's worst case is a curve of its own, `worst case: A+B+…`.
    Curves with fewer than two ε are dropped."""
    by_group: dict[tuple[str, str, tuple[str, ...]], dict[float, Point]] = {}
    for r in _newest(records):
        if r.threat.norm.value != norm:
            continue
        eps, index = r.threat.eps, r.index_sha256 or ""
        for label, res in r.attacks.items():
            if label == res.attack:
                by_group.setdefault((label, index, ()), {})[eps] = Point(eps, r, label)
        if len(r.attacks) > 1:  # the worst case of one attack set, comparable across ε
            by_group.setdefault((WORST_CASE, index, tuple(sorted(r.attacks))), {})[eps] = Point(eps, r, WORST_CASE)
    best: dict[str, tuple[tuple[str, ...], dict[float, Point]]] = {}  # label → (attack set, points)
    for (label, _, attacks), points in sorted(by_group.items()):
        if len(points) > len(best.get(label, ((), {}))[1]):
            best[label] = attacks, points
    curves = [_curve(label, points) for label, (_, points) in sorted(best.items()) if len(points) >= 2]
    if WORST_CASE in best:
        checked = set(best[WORST_CASE][0])
        beyond = [(len(attacks), len(points), attacks, points) for (label, _, attacks), points in sorted(by_group.items())
                  if label == WORST_CASE and len(points) >= 2 and not set(attacks) <= checked]
        if beyond:
            _, _, attacks, points = max(beyond, key=lambda item: item[:2])
            curves.append(_curve(f"worst case: {'+'.join(attacks)}", points))
    return curves


def _curve(label: str, points: dict[float, Point]) -> Curve:
    return Curve(label, f"n={next(iter(points.values())).n}", [points[e] for e in sorted(points)])


def strength(config: Mapping[str, Any]) -> int:
    return int(config.get("steps", 1)) * int(config.get("restarts", 1))


def strength_curves(records: list[RunRecord], norm: str, eps: float) -> list[Curve]:
    """Robust accuracy over steps × restarts: one curve per attack and per fixed value of the
    other knob (steps varied at fixed restarts, restarts varied at fixed steps), all else equal."""
    ladders: dict[tuple[str, str, str], dict[int, Point]] = {}
    for r in _newest(records):
        if (r.threat.norm.value, r.threat.eps) != (norm, eps):
            continue
        for label, res in r.attacks.items():
            config = res.config
            if not all(k in config for k in STRENGTH_FIELDS):
                continue
            for varied in STRENGTH_FIELDS:
                fixed = ", ".join(f"{k}={config[k]}" for k in STRENGTH_FIELDS if k != varied)
                rest = json.dumps({k: v for k, v in sorted(config.items()) if k != varied})
                key = (res.attack, f"{varied} varied, {fixed}", rest + (r.index_sha256 or ""))
                ladders.setdefault(key, {})[strength(config)] = Point(strength(config), r, label)
    return [Curve(name, detail, [ladder[s] for s in sorted(ladder)])
            for (name, detail, _), ladder in sorted(ladders.items()) if len(ladder) >= 2]
