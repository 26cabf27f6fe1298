"""RunRecord: every committed record reads into typed values that agree with its JSON, and writes
back the same JSON; a fresh record on disk is the typed record the harness returned.

One test loops over the committed tree (git HEAD, not the working tree: a user's own runs add
neither tests nor failures here)."""

import copy
import json

import numpy as np
import pytest

from bench.records import rules, schema
from bench.records.run_record import RunRecord
from bench.records.schema import RunPurpose


@pytest.fixture(scope="module")
def records(committed) -> list[dict]:
    return schema.load_records(committed / "runs")


def test_the_committed_records_include_one_migrated_from_schema_1(records):
    assert len(records) > 100
    assert {r["schema_version"] for r in records} == {2}  # v1 files are upgraded on load
    assert any(r["_file"].startswith("2026-11-21T084041Z") for r in records)  # the v1 file among them


def test_every_committed_record_reads_into_values_that_agree_with_its_json(records):
    disagreeing = []
    for raw in records:
        try:
            _agrees(raw)
        except AssertionError as exc:
            disagreeing.append(f"{raw['_file']}: {exc}")
    assert disagreeing == []


def test_the_comparison_fails_on_a_record_that_disagrees_with_its_json(records):
    raw = {**records[0], "data": {**records[0]["data"], "n": records[0]["data"]["n"] + 1}}
    with pytest.raises(AssertionError):
        _agrees(raw)


def _agrees(raw: dict) -> None:
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
        assert np.allclose(attack.robust.interval, raw["attacks"][label]["ci95"], rtol=0, atol=1e-15)
        assert not (attack.flags & ~typed.clean_correct).any()
        assert list(attack.stages) == raw["attacks"][label].get("stages", [])
        assert list(attack.warnings) == raw["attacks"][label].get("warnings", [])
        margins = raw["per_example"].get("margin", {}).get(label)
        assert (attack.margins is None) == (margins is None) and (margins is None or list(attack.margins) == margins)
        assert typed.flags_by_index(label) == {i: f == "1" for i, f in zip(
            raw["per_example"]["index"], raw["per_example"]["robust"][label], strict=True)}
    expected_worst = np.logical_and.reduce([typed.clean_correct, *(a.flags for a in typed.attacks.values())])
    assert np.array_equal(typed.worst_flags, expected_worst)
    assert typed.worst_case.count == int(expected_worst.sum())
    assert typed.index.tolist() == raw["per_example"]["index"]
    # the interval is recomputed (an early formula wrote 2e-19 instead of 0 at count 0; nothing printed it)
    assert np.allclose(typed.clean.interval, raw["clean"]["ci95"], rtol=0, atol=1e-15)
    assert np.allclose(typed.worst_case.interval, raw["worst_case"]["ci95"], rtol=0, atol=1e-15)
    assert typed.selection == raw["data"].get("selection")
    assert typed.model.training_budget == raw["model"].get("training_budget")
    assert typed.model.input == raw["model"].get("input")
    assert typed.clean_indices() == {i for i, c in zip(raw["per_example"]["index"], raw["per_example"]["clean_correct"],
                                                       strict=True) if c == "1"}
    assert typed.has_per_attack_flags == (raw["purpose"] != "worst-case")
    assert typed.order == (raw["provenance"]["date"], raw["_file"])


def _as_written_today(raw: dict) -> dict:
    """A committed record as this version writes it: fields older versions left out take their
    default (`adaptive`: false) and the interval is recomputed (an early formula wrote 2e-19 for 0)."""
    out = {key: value for key, value in raw.items() if key != "_file"}
    for attack in out["attacks"].values():
        attack.setdefault("adaptive", False)
    for entry in (out["clean"], out["worst_case"], *out["attacks"].values()):
        entry["ci95"] = [round(bound, 12) for bound in entry["ci95"]]
    return out


def test_the_typed_record_writes_back_the_json_it_was_read_from(records):
    """One shape: `RunRecord.to_json` (the writer) inverts `RunRecord.of` (the reader), and what it
    writes passes the rules (`bench.records.rules`) that every read applies."""
    differing = []
    for raw in records:
        written = RunRecord.of(raw).to_json()
        assert rules.problems(written) is None, raw["_file"]
        if _as_written_today(written) != _as_written_today(copy.deepcopy(raw)):
            differing.append(raw["_file"])
    assert differing == []


def test_a_fresh_record_is_the_typed_record_the_harness_returned(tmp_path):
    import bench

    result = bench.evaluate("pgd-at", attacks="fgsm,pgd:steps=3", n=12, save=True, results_dir=tmp_path)
    on_disk = json.loads(result.record_path.read_text())
    assert result.record.to_json() == on_disk  # the harness's typed record is what was written
    assert RunRecord.of(schema.load_record(result.record_path)).to_json() == on_disk  # and what is read back
    assert result.record.file == result.record_path.name
