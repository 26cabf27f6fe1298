"""Certificates in run records: beside the attacks' flags, validated on read, and never contradicting them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import bench
from bench.cli import main
from bench.errors import BenchError
from bench.records.rules import problems
from bench.records.run_record import RunRecord
from bench.verifier.runner import Certificate, Method


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 3))
    with torch.no_grad():
        net[1].weight.mul_(8)  # steep enough that ε = 0.05 breaks some points and not others
    return net.eval()


def _points(model: nn.Module, n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(n, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return x, model(x).argmax(dim=1)


def test_the_record_keeps_each_methods_flags_beside_the_attacks_and_reads_back():
    model = _mlp()
    result = bench.evaluate(model, dataset=_points(model), eps=0.05, attacks="fgsm,pgd", certify="ibp,crown,milp")
    record = result.record
    assert list(record.certified) == ["ibp", "crown", "milp"]
    ibp, crown, milp = record.certified.values()
    assert milp.exact and not crown.exact
    assert not (ibp.flags & ~crown.flags).any() and not (crown.flags & ~milp.flags).any()
    assert not (milp.flags & ~record.worst_flags).any()
    # the bracket: certified ≤ exact ≤ every attack's count
    assert ibp.certified.count <= milp.certified.count <= record.worst_case.count
    assert milp.certified.count > 0 and milp.refuted.sum() + milp.flags.sum() == len(record.index)
    as_json = _as_stored(record)
    assert problems(as_json) is None
    assert RunRecord.of(as_json).to_json() == {**record.to_json(), "data": as_json["data"]}


def _as_stored(record: RunRecord) -> dict:
    """The record's JSON as a file holds it; points handed over as tensors are named as test points of a
    dataset (a record on disk is always of one), so that the rules apply."""
    as_json = json.loads(json.dumps(record.to_json()))
    as_json["data"]["dataset"] = "fashion-mnist"
    return as_json


def _record_json() -> dict:
    model = _mlp()
    return _as_stored(bench.evaluate(model, dataset=_points(model), eps=0.1, attacks="pgd", certify="crown").record)


def test_a_record_certifying_a_broken_point_is_refused_naming_point_attack_and_method():
    record = _record_json()
    pe = record["per_example"]
    broken = next(i for i, (c, w) in enumerate(zip(pe["clean_correct"], pe["worst_case"], strict=True))
                  if c == "1" and w == "0")
    bits = list(pe["certified"]["crown"])
    bits[broken] = "1"
    pe["certified"]["crown"] = "".join(bits)
    record["certified"]["crown"]["count"] += 1
    record["certified"]["crown"]["certified_accuracy"] = pe["certified"]["crown"].count("1") / len(bits)
    assert problems(record) == (f"per_example.certified.crown: point #{pe['index'][broken]} is certified by crown "
                                f"but broken by {pe['broken_first_by'][broken]}: a bug in the attack or the verifier")


@pytest.mark.parametrize(("damage", "message"), [
    (lambda r: r["per_example"]["certified"].pop("crown"), "per_example.certified: names other methods"),
    (lambda r: r["certified"]["crown"].update(count=99), "certified.crown.count: says 99"),
    (lambda r: r["per_example"]["refuted"].update(crown="1" * r["data"]["n"]), "refuted flags"),
    (lambda r: r["per_example"]["certified_margin"]["crown"].pop(), "has 23 entries but data.n is 24"),
])
def test_inconsistent_certificates_are_refused(damage, message):
    record = _record_json()
    damage(record)
    assert message in (problems(record) or "")


def test_a_verifier_contradicting_an_attack_stops_the_run_before_anything_is_written(monkeypatch, tmp_path):
    """A verifier that certifies everything (a bug) is caught by the attacks' verified successes."""
    model = _mlp()

    def lying(model, x, y, eps, method, **_):
        n = len(y)
        return Certificate(method, np.ones(n, dtype=bool), np.zeros(n, dtype=bool), np.ones(n), 0.0, {})

    monkeypatch.setattr("bench.evaluation.certified.certify_points", lying)
    with pytest.raises(BenchError, match=r"is certified by ibp but broken by pgd: a bug in the attack or the verifier"):
        bench.evaluate(model, dataset=_points(model), eps=0.2, attacks="pgd", certify="ibp")


def test_bench_run_certify_prints_the_certified_rows_and_records_them(tmp_path, capsys):
    assert main(["run", "--defense", "pgd-at", "--attack", "fgsm", "--n", "6", "--eps", "0.01", "--certify",
                 "ibp,crown", "--results-dir", str(tmp_path / "runs"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "certified (ibp)" in out and "certified (crown)" in out and "lower bound" in out
    (path,) = (tmp_path / "runs").glob("*.json")
    record = json.loads(path.read_text())
    assert set(record["certified"]) == {"ibp", "crown"}
    assert record["certified"]["crown"]["config"]["allowance"] == 1e-4
    assert all(m is None or isinstance(m, float) for m in record["per_example"]["certified_margin"]["crown"])


def test_methods_parse_in_order_once_each():
    assert Method.parse_list("crown, ibp,crown") == (Method.CROWN, Method.IBP)
    with pytest.raises(BenchError, match="Did you mean: milp"):
        Method.parse_list(["mlip"])


def _board_record(eps: float, certify: str) -> RunRecord:
    """A record as the board reads it (named as fashion-mnist test points)."""
    model = _mlp()
    stored = _as_stored(bench.evaluate(model, dataset=_points(model), eps=eps, attacks="fgsm,pgd",
                                       certify=certify).record)
    stored["provenance"]["date"] = "2026-12-07T00:00:00Z"
    return RunRecord.of(stored)


def test_the_board_brackets_each_row_and_measures_each_attacks_gap_to_the_exact_truth():
    from bench.reporting.columns import bracket_text, certified_text
    from bench.reporting.markdown import render
    from bench.reporting.rows import build_rows

    record = _board_record(0.1, "crown,milp")
    ((_, (row,)),) = build_rows([record])[0].items()
    assert row.certified is not None and row.certified.method == "milp" and row.certified.decides_all
    milp = record.certified["milp"]
    assert certified_text(row, row.worst.n) == f"{100 * milp.certified.value:.1f} milp"
    assert bracket_text(row) == f"[{100 * milp.certified.value:.1f}, {100 * row.worst.accuracy:.1f}] exact"
    gaps = {g.attack: g for g in row.exact_gaps}
    for label in ("fgsm", "pgd", "worst case"):
        gap = gaps[label]
        assert gap.shared == len(record.index) and gap.truly_robust == milp.certified.count
        assert gap.robust - gap.truly_robust == len(gap.missed)  # certified ⊆ robust: the rest is the miss
    # the toy's known case: PGD leaves one point robust that the MILP refutes
    assert gaps["pgd"].robust == 12 and gaps["pgd"].truly_robust == 11 and len(gaps["pgd"].missed) == 1
    board, _ = render([record])
    assert "exact robust accuracy (milp, 24 points decided, 0 undecided): **45.8**" in board
    assert f"#{gaps['pgd'].missed[0]}" in board


def test_a_certificate_contradicted_by_another_records_attack_stops_the_board_and_names_it():
    import dataclasses

    from bench.reporting.rows import build_rows

    certified = _board_record(0.05, "milp")
    proven = int(np.flatnonzero(certified.certified["milp"].flags)[0])
    flags = certified.attacks["pgd"].flags.copy()
    flags[proven] = False  # another run "broke" a point the MILP proved robust
    attacked = dataclasses.replace(certified, certified={}, file="later.json",
                                   attacks={"pgd": dataclasses.replace(certified.attacks["pgd"], flags=flags)})
    with pytest.raises(BenchError, match=rf"point #{certified.index[proven]} is certified by milp but broken by pgd"):
        build_rows([certified, attacked])


def test_bench_certify_checks_its_certificates_with_an_attack_and_records_them(tmp_path, capsys):
    assert main(["certify", "--defense", "pgd-at", "--n", "4", "--eps", "0.01", "--method", "ibp",
                 "--results-dir", str(tmp_path / "runs"), "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    (path,) = (tmp_path / "runs").glob("*.json")
    record = json.loads(path.read_text())
    assert list(record["certified"]) == ["ibp"] and list(record["attacks"]) == ["pgd"]
    assert summary["certified_accuracy"]["ibp"] == record["certified"]["ibp"]["certified_accuracy"]


def test_the_api_certify_is_bench_certify():
    model = _mlp()
    result = bench.certify(model, dataset=_points(model), eps=0.05, methods="milp")
    assert list(result.record.certified) == ["milp"] and list(result.robust) == ["pgd"]
    with pytest.raises(BenchError, match="name at least one certification method"):
        bench.certify(model, dataset=_points(model), eps=0.05, methods="")
