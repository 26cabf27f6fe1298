"""Property-based fuzzing of the two parsers users feed text to: attack specs and run records.

Whatever the input, the answer is a value or a BenchError with a message — never another
exception. Runs derandomized (the same examples every run), a few seconds in all.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import json
from typing import Any, get_type_hints

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.attacks import ATTACKS, build_attacks, parse_attacks
from bench.errors import BenchError
from bench.evaluation.committed import attack_context
from bench.records.rules import problems
from bench.records.run_record import RunRecord
from bench.records.schema import RecordError, upgrade
from bench.reporting.table import build_table
from bench.threat import Norm
from tests.conftest import REPO

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
CONTEXT = attack_context("fashion-mnist", "pgd-at")
NAMES = [*ATTACKS.names(), "adaptive", "PGD", "pgdd"]
KEYS = ["steps", "restarts", "rel_step", "random_start", "loss", "targets", "queries", "per_example_start", "", "x"]
VALUES = ["0", "1", "5", "-3", "1e9", "nan", "true", "maybe", "ce", "margin", "dlr", "pgd-at", "", "0.5"]
RECORD = json.loads((REPO / "results" / "runs" / "2026-11-21T162357Z-fashion-mnist-pgd-at-8f318a11.json").read_text())


def _valid_params(name: str) -> list[tuple[str, list[str]]]:
    """(parameter, values of its type) for a registered attack: most drawn specs should build."""
    if name not in ATTACKS:
        return []
    hints = get_type_hints(ATTACKS.get(name).config_type)
    choices = []
    for f in dataclasses.fields(ATTACKS.get(name).config_type):
        kind = hints[f.name]
        if kind is bool:
            choices.append((f.name, ["true", "false"]))
        elif kind is int:
            choices.append((f.name, ["1", "2", "3"]))
        elif kind is float:
            choices.append((f.name, ["0.25", "0.5"]))
        elif isinstance(kind, type) and issubclass(kind, enum.Enum):
            choices.append((f.name, [m.value for m in kind]))
    return choices


@st.composite
def attack_specs(draw) -> str:
    tokens = []
    for _ in range(draw(st.integers(0, 3))):
        noise = draw(st.integers(0, 9)) == 0  # one draw in ten is garbage, the rest are near-valid specs
        name = draw(st.text("abcdgpfsw-:=,", max_size=6) if noise else st.sampled_from(NAMES))
        token, valid = name, _valid_params(name)
        for i in range(draw(st.integers(0, 3))):
            if valid and draw(st.integers(0, 4)) > 0:
                key, values = draw(st.sampled_from(valid))
                pair = f"{key}={draw(st.sampled_from(values))}"
            else:
                key, value = draw(st.sampled_from(KEYS)), draw(st.sampled_from(VALUES) | st.text(max_size=4))
                pair = f"{key}={value}" if draw(st.booleans()) else value
            token += (":" if i == 0 else ",") + pair
        tokens.append(token)
    separator = draw(st.sampled_from([",", ", ", ",,"]))
    return separator.join(tokens)


@FUZZ
@given(attack_specs(), st.sampled_from(list(Norm)))
def test_any_attack_spec_builds_or_is_a_bench_error(text, norm):
    try:
        attacks = build_attacks(parse_attacks(text), norm, CONTEXT)
    except BenchError as exc:
        assert str(exc)
        return
    labels = [a.label for a in attacks]
    assert len(set(labels)) == len(labels) and attacks
    again = build_attacks(parse_attacks(",".join(labels)), norm, CONTEXT)  # a label names its attack exactly
    assert [a.label for a in again] == labels and [a.config for a in again] == [a.config for a in attacks]


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list) and value:
        found += _paths(value[0], (*prefix, 0))
    return found


PATHS = _paths(RECORD)
JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 10**6) | st.floats(allow_nan=True)
                    | st.text(max_size=5), lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=5)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(PATHS), JSON | st.just(KeyError)), min_size=1, max_size=3))
def test_any_damaged_record_is_refused_or_fully_usable(mutations):
    record = copy.deepcopy(RECORD)
    for path, value in mutations:
        target = record
        try:
            for key in path[:-1]:
                target = target[key]
            if value is KeyError:
                del target[path[-1]]
            else:
                target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed the parent
    try:
        upgraded = upgrade(record, "fuzzed.json")
    except RecordError as exc:
        assert str(exc).startswith("fuzzed.json")
        return
    upgraded["_file"] = "fuzzed.json"
    table = build_table([RunRecord.of(upgraded)])  # what validation lets through, the consumers can read
    assert len(table) == len(upgraded["attacks"]) + 1


def test_the_committed_record_itself_is_valid():
    assert problems(copy.deepcopy(RECORD)) is None


def test_found_by_the_fuzzer_an_interval_the_schema_leaves_optional_is_computed_when_absent():
    record = copy.deepcopy(RECORD)
    label = next(iter(record["attacks"]))
    recorded = record["attacks"][label].pop("ci95")
    del record["clean"]["ci95"]
    upgraded = upgrade(record, "no-ci.json")
    typed = RunRecord.of(upgraded)
    assert list(typed.attacks[label].robust.interval) == recorded  # as the harness computes it
    assert typed.clean.low < typed.clean.value < typed.clean.high


def test_found_by_the_fuzzer_a_budget_the_norm_cannot_have_is_refused_by_validation():
    record = copy.deepcopy(RECORD)
    record["threat"]["eps"] = 2
    assert problems(record) == "threat.eps: invalid ε 2.0: an L∞ budget must be in (0, 1] for inputs in [0, 1]"
    with pytest.raises(RecordError, match=r"^eps2\.json"):
        upgrade(record, "eps2.json")
