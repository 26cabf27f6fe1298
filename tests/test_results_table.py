"""Records → results.csv: schema migration, refusal of bad records, filters, and concurrent writers."""

import json
import multiprocessing
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.errors import BenchError
from bench.records import schema
from bench.records.run_record import RunRecord, load_run_records
from bench.records.store import write_record
from bench.reporting.derived import rebuild
from bench.reporting.table import build_table, filter_table
from tests.conftest import REPO

RUNS = REPO / "results" / "runs"
# The vertical slice's first record: schema 1, absolute checkpoint path, no variant/budget fields.
V1_RECORD = RUNS / "2026-11-21T084041Z-fashion-mnist-standard-7dbc4bf0.json"


def test_schema_1_record_is_migrated_in_memory_only():
    before = V1_RECORD.read_bytes()
    raw = json.loads(before)
    assert raw["schema_version"] == 1 and "label" not in raw["model"] and raw["model"]["path"].startswith("/")
    record = schema.load_record(V1_RECORD)
    assert record["schema_version"] == schema.SCHEMA_VERSION == 2
    assert record["model"]["label"] == "standard"
    assert record["model"]["path"] == "checkpoints/fashion-mnist/standard-smallcnn.pt"
    assert record["model"]["variant"] is None and record["model"]["training_budget"] is None
    assert record["data"]["sample_seed"] is None and record["purpose"] == "evaluation"
    assert V1_RECORD.read_bytes() == before  # records on disk are never rewritten


def test_sampled_selection_migrates_to_its_seed():
    raw = json.loads(V1_RECORD.read_text())
    raw["data"]["selection"] = "sample-seed=7"
    assert schema.upgrade(raw, "x.json")["data"]["sample_seed"] == 7


@pytest.mark.parametrize("damage, message", [
    (lambda r: r.update(schema_version=99), "schema_version 99 is newer than this bench understands"),
    (lambda r: r.pop("schema_version"), "no integer schema_version"),
    (lambda r: r["per_example"].update(worst_case="01"), "per_example.worst_case: has 2 entries"),
    (lambda r: r.pop("clean"), "clean: is missing"),
    (lambda r: r["per_example"]["robust"].pop("aa"), "the attacks and the per-example flags name different"),
])
def test_bad_records_are_refused_naming_the_file(tmp_path, damage, message):
    raw = json.loads(V1_RECORD.read_text())
    damage(raw)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(BenchError, match=message) as info:
        schema.load_record(path)
    assert str(path) in str(info.value)


def _runs_copy(tmp_path: Path, committed: Path, count: int = 4) -> Path:
    runs = tmp_path / "runs"
    runs.mkdir()
    for path in sorted((committed / "runs").glob("*.json"))[:count]:
        shutil.copy(path, runs / path.name)
    return runs


def test_corrupt_record_stops_the_rebuild_and_loses_nothing(tmp_path, capsys, committed):
    runs = _runs_copy(tmp_path, committed)
    rebuild(runs)
    derived = {p: p.read_bytes() for p in [tmp_path / "results.csv", tmp_path / "LEADERBOARD.md"]}
    (runs / "2099-01-01T000000Z-broken.json").write_text('{"schema_version": 2, "model": ')
    assert main(["leaderboard", "--results-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert "2099-01-01T000000Z-broken.json" in err and "corrupt record" in err
    assert {p: p.read_bytes() for p in derived} == derived


def test_table_has_a_row_per_attack_plus_worst_case(committed):
    records = schema.load_records(committed / "runs")
    table = build_table([RunRecord.of(r) for r in records])
    first = records[0]
    rows = table[table["run"] == Path(first["_file"]).stem]
    assert sorted(rows["attack"]) == sorted([*first["attacks"], "worst_case"])
    worst = rows[rows["attack"] == "worst_case"].iloc[0]
    assert worst["robust_accuracy"] == first["worst_case"]["robust_accuracy"]
    assert set(table.columns) >= {"dataset", "norm", "eps", "defense", "variant", "arch", "checkpoint_sha256",
                                  "protocol", "n", "clean_accuracy", "robust_accuracy", "ci95_low", "ci95_high",
                                  "forward_per_example", "seconds", "device", "precision", "bench_version",
                                  "git_sha", "date"}
    assert table["ci95_low"].le(table["robust_accuracy"]).all() and table["robust_accuracy"].le(
        table["ci95_high"]).all()


def test_filters_and_unknown_values(committed):
    table = build_table(load_run_records(committed / "runs"))
    only = filter_table(table, defense="ancra", attack="aa")
    assert len(only) >= 1 and set(only["defense"]) == {"ancra"} and set(only["attack"]) == {"aa"}
    with pytest.raises(BenchError, match="no results with defense 'ancr'"):
        filter_table(table, defense="ancr")


@pytest.mark.parametrize("fmt", ["md", "csv", "json"])
def test_bench_results_formats(fmt, capsys, committed):
    assert main(["results", "--results-dir", str(committed / "runs"), "--defense", "pgd-at", "--attack",
                 "worst_case", "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "json":
        rows = json.loads(out)
        assert rows and {r["attack"] for r in rows} == {"worst_case"}
    elif fmt == "csv":
        assert out.startswith("run,date,dataset") and "worst_case" in out
    else:
        assert out.startswith("| date") and "pgd-at" in out


def _writer(runs: str, template: str, count: int) -> None:
    record = RunRecord.of(schema.load_record(Path(template)))
    for _ in range(count):
        write_record(Path(runs), record, "fashion-mnist-standard")
        rebuild(Path(runs), with_leaderboard=False)


def test_concurrent_writers_never_corrupt_or_lose_a_record(tmp_path, committed):
    runs = tmp_path / "runs"
    runs.mkdir()
    template = str(sorted((committed / "runs").glob("*standard*.json"))[-1])
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(runs), template, 5)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert len(list(runs.glob("*.json"))) == 15
    table = pd.read_csv(tmp_path / "results.csv")
    assert table["run"].nunique() == 15  # the last rebuild saw every record
    assert not list(tmp_path.glob(".*.tmp")) and not list(runs.glob(".*.tmp"))


@pytest.mark.parametrize("command", ["results", "leaderboard"])
def test_missing_results_folder_is_a_clear_error(command, tmp_path, capsys):
    assert main([command, "--results-dir", str(tmp_path / "nowhere")]) == 2
    assert "no results folder at" in capsys.readouterr().err
