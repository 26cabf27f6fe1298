"""RunRecord: every committed record reads into typed values that agree with its JSON."""

import numpy as np
import pytest

from bench import schema
from bench.run_record import RunRecord
from bench.schema import RunPurpose
from tests.conftest import REPO

RECORDS = schema.load_records(REPO / "results" / "runs")


def test_the_committed_records_include_one_migrated_from_schema_1():
    assert len(RECORDS) > 100
    assert {r["schema_version"] for r in RECORDS} == {2}  # v1 files are upgraded on load
    assert any(r["_file"].startswith("2026-11-21T084041Z") for r in RECORDS)  # the v1 file among them


@pytest.mark.parametrize("raw", RECORDS, ids=[r["_file"][:40] for r in RECORDS])
def test_a_committed_record_reads_into_values_that_agree_with_its_json(raw):
    typed = RunRecord.of(raw)
    n = raw["data"]["n"]
    assert typed.n == n and typed.run == raw["_file"].removesuffix(".json")
    assert typed.purpose is RunPurpose(raw["purpose"]) and typed.model.sha256 == raw["model"]["sha256"]
    assert typed.threat.norm.value == raw["threat"]["norm"] and typed.threat.eps == raw["threat"]["eps"]
    assert list(typed.attacks) == list(raw["attacks"])  # the run's order
    assert typed.clean.count == raw["per_example"]["clean_correct"].count("1")
    for label, attack in typed.attacks.items():
        assert attack.flags.dtype == np.bool_ and attack.flags.shape == (n,)
        assert attack.robust.count == raw["attacks"][label]["count"] == int(attack.flags.sum())
        assert attack.robust.value == raw["attacks"][label]["robust_accuracy"]
        assert not (attack.flags & ~typed.clean_correct).any()
    expected_worst = np.logical_and.reduce([typed.clean_correct, *(a.flags for a in typed.attacks.values())])
    assert np.array_equal(typed.worst_flags, expected_worst)
    assert typed.worst_case.count == int(expected_worst.sum())
    assert typed.index.tolist() == raw["per_example"]["index"]
