"""What a valid run record is: every field's type and range, and summaries that agree with the flags.

Records are read back by the table, the leaderboard, the audit and the gate; a record that breaks
any rule here is refused with its file name and the field, before any derived file is touched.
The rules are data (`RECORD`), built from small checkers, so the shape of a record is written down
once. `problems(record)` returns the first broken rule, or None.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.data import DATASETS, hash_indices
from bench.errors import BenchError
from bench.threat import Norm, ThreatModel

Checker = Callable[[Any, str], None]


class Broken(Exception):
    """One broken rule: `where` is the field's dotted path."""


def _fail(where: str, message: str) -> None:
    raise Broken(f"{where}: {message}")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def string(*, nonempty: bool = False, choices: tuple[str, ...] | None = None, length: int | None = None,
           pattern: str | None = None) -> Checker:
    shape = re.compile(pattern) if pattern else None

    def check(value: Any, where: str) -> None:
        if not isinstance(value, str):
            _fail(where, f"must be a string, not {_kind(value)}")
        if nonempty and not value:
            _fail(where, "must not be empty")
        if choices is not None and value not in choices:
            _fail(where, f"{value[:60]!r} is not one of {', '.join(choices)}")
        if length is not None and len(value) != length:
            _fail(where, f"must have {length} characters, has {len(value)}")
        if shape is not None and not shape.fullmatch(value):
            _fail(where, f"{value[:60]!r} is not of the form {pattern}")
    return check


SHA256 = string(pattern="[0-9a-f]{64}")
DATE = string(pattern=r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def integer(*, lo: int | None = None) -> Checker:
    def check(value: Any, where: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(where, f"must be an integer, not {_kind(value)}")
        if lo is not None and value < lo:
            _fail(where, f"must be at least {lo}, is {value}")
    return check


def number(*, lo: float | None = None, hi: float | None = None, positive: bool = False) -> Checker:
    def check(value: Any, where: str) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(where, f"must be a number, not {_kind(value)}")
        if not math.isfinite(value):
            _fail(where, f"must be finite, is {value}")
        if lo is not None and value < lo or hi is not None and value > hi:
            _fail(where, f"must lie in [{lo}, {hi}], is {value}")
        if positive and value <= 0:
            _fail(where, f"must be positive, is {value}")
    return check


def boolean(value: Any, where: str) -> None:
    if not isinstance(value, bool):
        _fail(where, f"must be true or false, not {_kind(value)}")


def anything(value: Any, where: str) -> None:
    return None


def json_object(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        _fail(where, f"must be an object, not {_kind(value)}")


def nullable(inner: Checker) -> Checker:
    def check(value: Any, where: str) -> None:
        if value is not None:
            inner(value, where)
    return check


def list_of(inner: Checker, *, length: int | None = None) -> Checker:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, list):
            _fail(where, f"must be a list, not {_kind(value)}")
        if length is not None and len(value) != length:
            _fail(where, f"must have {length} entries, has {len(value)}")
        for i, item in enumerate(value):
            inner(item, f"{where}[{i}]")
    return check


def map_of(inner: Checker) -> Checker:
    def check(value: Any, where: str) -> None:
        json_object(value, where)
        for key, item in value.items():
            inner(item, f"{where}.{key}")
    return check


@dataclass(frozen=True)
class Obj:
    """An object with required and optional fields (others are allowed: later schema additions)."""

    required: Mapping[str, Checker]
    optional: Mapping[str, Checker] = field(default_factory=dict)

    def __call__(self, value: Any, where: str) -> None:
        json_object(value, where)
        for key, check in self.required.items():
            if key not in value:
                _fail(f"{where}.{key}".lstrip("."), "is missing")
            check(value[key], f"{where}.{key}".lstrip("."))
        for key, check in self.optional.items():
            if key in value:
                check(value[key], f"{where}.{key}".lstrip("."))


def flags(value: Any, where: str) -> None:
    string()(value, where)
    if set(value) - {"0", "1"}:
        _fail(where, "must be 0/1 characters only")


UNIT = number(lo=0.0, hi=1.0)
INTERVAL = list_of(UNIT, length=2)
ACCURACY_FIELDS = {"count": integer(lo=0), "ci95": INTERVAL}
ATTACK = Obj(
    {"robust_accuracy": UNIT, "count": integer(lo=0), "attack": string(nonempty=True),
     "protocol": string(nonempty=True), "config": json_object, "seconds": number(lo=0.0),
     "passes": Obj({"forward_per_example": number(lo=0.0), "backward_per_example": number(lo=0.0)},
                   {"forward": integer(lo=0), "backward": integer(lo=0)})},
    {"ci95": INTERVAL, "adaptive": boolean, "stages": list_of(nullable(string())), "stage_cost": json_object,
     "warnings": list_of(string())})
CERTIFIED = Obj({"method": string(nonempty=True), "certified_accuracy": UNIT, "seconds": number(lo=0.0),
                 "config": json_object},
                {"exact": boolean, "count": integer(lo=0), "ci95": INTERVAL, "refuted": integer(lo=0)})
RECORD = Obj({
    "schema_version": integer(lo=1),
    "purpose": string(choices=("evaluation", "eps-sweep", "worst-case")),
    "config": Obj({"attacks": string(nonempty=True), "seed": integer(lo=0)},
                  {"batch_size": integer(lo=1), "device": string(), "resumed": boolean, "cascade": boolean,
                   "world_size": integer(lo=1), "randomized_draws": integer(lo=1), "randomized_rule": string()}),
    "threat": Obj({"norm": string(choices=tuple(n.value for n in Norm)), "eps": number(positive=True)}),
    "model": Obj({"label": string(nonempty=True), "path": string(nonempty=True), "sha256": SHA256},
                 {"defense": nullable(string()), "arch": nullable(string()), "paper": nullable(string()),
                  "variant": nullable(string()), "hyperparameters": nullable(json_object),
                  "training_budget": nullable(json_object), "trained_by": nullable(string()),
                  "source": string(), "input": string()}),
    "data": Obj({"dataset": string(choices=tuple(DATASETS.names())), "n": integer(lo=1)},
                {"split": string(choices=("test",)), "selection": string(), "sample_seed": nullable(integer(lo=0)),
                 "index_sha256": SHA256}),
    "provenance": Obj({"date": DATE},
                      {"device": nullable(string()), "git_sha": nullable(string()), "precision": string(),
                       "versions": map_of(nullable(string())), "channels_last": boolean, "compile": boolean}),
    "clean": Obj({"accuracy": UNIT}, ACCURACY_FIELDS),
    "attacks": map_of(ATTACK),
    "worst_case": Obj({"robust_accuracy": UNIT}, ACCURACY_FIELDS),
    "per_example": Obj({"index": list_of(integer(lo=0)), "clean_correct": flags, "robust": map_of(flags),
                        "worst_case": flags},
                       {"label": list_of(integer(lo=0)), "broken_first_by": list_of(nullable(string())),
                        "margin": map_of(list_of(nullable(number()))), "certified": map_of(flags),
                        "refuted": map_of(flags), "certified_margin": map_of(list_of(nullable(number())))}),
}, {"warnings": list_of(string()), "certified": map_of(CERTIFIED)})

TOLERANCE = 1e-9  # accuracies are count / n written by Python: equal up to float rounding


def _agree(where: str, summary: dict[str, Any], key: str, bits: str) -> None:
    n, count = len(bits), bits.count("1")
    if abs(summary[key] - count / n) > TOLERANCE:
        _fail(f"{where}.{key}", f"says {summary[key]} but its per-example flags give {count}/{n}")
    if "count" in summary and summary["count"] != count:
        _fail(f"{where}.count", f"says {summary['count']} but its per-example flags have {count}")


def _consistent(record: dict[str, Any]) -> None:
    try:  # a budget the norm cannot have (L∞ above 1) is refused here, not by a reader later
        ThreatModel(Norm(record["threat"]["norm"]), float(record["threat"]["eps"]))
    except BenchError as exc:
        _fail("threat.eps", str(exc))
    n, pe = record["data"]["n"], record["per_example"]
    if set(record["attacks"]) != set(pe["robust"]):
        _fail("attacks", "the attacks and the per-example flags name different attacks")
    sized = {"per_example.index": pe["index"], "per_example.clean_correct": pe["clean_correct"],
             "per_example.worst_case": pe["worst_case"],
             **{f"per_example.robust.{a}": f for a, f in pe["robust"].items()},
             **{f"per_example.{k}": pe[k] for k in ("label", "broken_first_by") if k in pe},
             **{f"per_example.margin.{a}": m for a, m in pe.get("margin", {}).items()},
             **{f"per_example.{k}.{m}": v for k in ("certified", "refuted", "certified_margin")
                for m, v in pe.get(k, {}).items()}}
    for where, values in sized.items():
        if len(values) != n:
            _fail(where, f"has {len(values)} entries but data.n is {n}")
    if len(set(pe["index"])) != n:
        _fail("per_example.index", "names a test point twice")
    spec = DATASETS.get(record["data"]["dataset"])
    if max(pe["index"]) >= spec.test_points:
        _fail("per_example.index", f"names point {max(pe['index'])}, beyond the {spec.test_points} test points "
              f"of {spec.name}")
    if "index_sha256" in record["data"] and record["data"]["index_sha256"] != hash_indices(np.array(pe["index"])):
        _fail("data.index_sha256", "is not the hash of per_example.index")
    if any(label >= spec.num_classes for label in pe.get("label", [])):
        _fail("per_example.label", f"names a class beyond the {spec.num_classes} of {spec.name}")
    clean = pe["clean_correct"]
    _agree("clean", record["clean"], "accuracy", clean)
    worst = [c == "1" for c in clean]
    for label, bits in pe["robust"].items():
        if any(b == "1" and c == "0" for b, c in zip(bits, clean, strict=True)):
            _fail(f"per_example.robust.{label}", "counts a point robust that is not even classified correctly")
        _agree(f"attacks.{label}", record["attacks"][label], "robust_accuracy", bits)
        worst = [w and b == "1" for w, b in zip(worst, bits, strict=True)]
    if pe["worst_case"] != "".join("1" if w else "0" for w in worst):
        _fail("per_example.worst_case", "is not robust-under-every-attack of the per-attack flags")
    _agree("worst_case", record["worst_case"], "robust_accuracy", pe["worst_case"])
    _certificates_consistent(record)


def _certificates_consistent(record: dict[str, Any]) -> None:
    """A verifier's flags agree with its summary, certify only correctly classified points, never both
    certify and refute one, and no attack of the run broke a certified point."""
    pe, methods = record["per_example"], set(record.get("certified", {}))
    for key in ("certified", "refuted", "certified_margin"):
        if set(pe.get(key, {})) != methods:
            _fail(f"per_example.{key}", "names other methods than the record's certified results")
    for method in methods:
        certified, refuted = pe["certified"][method], pe["refuted"][method]
        _agree(f"certified.{method}", record["certified"][method], "certified_accuracy", certified)
        if "refuted" in record["certified"][method] and record["certified"][method]["refuted"] != refuted.count("1"):
            _fail(f"certified.{method}.refuted", "does not count the per-example refuted flags")
        for i, (c, r, ok) in enumerate(zip(certified, refuted, pe["clean_correct"], strict=True)):
            if c == "1" and (r == "1" or ok == "0"):
                _fail(f"per_example.certified.{method}", f"point #{pe['index'][i]} is certified but "
                      f"{'refuted' if r == '1' else 'misclassified'}")
        broken = certified_but_broken(record, method)
        if broken:
            _fail(f"per_example.certified.{method}", broken)


def certified_but_broken(record: dict[str, Any], method: str) -> str | None:
    """A point `method` certifies that an attack of the run broke (a bug in the attack's verification or in
    the verifier: never published), named with the attack; None when there is none."""
    pe = record["per_example"]
    for i, (c, w) in enumerate(zip(pe["certified"][method], pe["worst_case"], strict=True)):
        if c == "1" and w == "0":
            first = (pe.get("broken_first_by") or [None] * len(pe["index"]))[i]
            attack = first or next(label for label, bits in pe["robust"].items() if bits[i] == "0")
            return (f"point #{pe['index'][i]} is certified by {method} but broken by {attack}: a bug in the "
                    "attack or the verifier")
    return None


def problems(record: Any) -> str | None:
    """The first rule the record breaks (field path and what is wrong), or None."""
    try:
        RECORD(record, "")
        _consistent(record)
    except Broken as exc:
        return str(exc)
    return None
