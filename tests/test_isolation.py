"""Runs never interfere: derived files stay in their own results tree, a state being written is
locked, checkpoints are not replaced without --overwrite, and the demo writes outside results/."""

from __future__ import annotations

import json
import re

import pandas as pd

from bench.cli import main
from bench.records.resume import ResumeState
from bench.reporting.derived import derived_root
from tests.conftest import REPO

RUN = ["run", "--defense", "standard", "--attack", "fgsm", "--n", "10", "--quiet"]


def test_sibling_results_folders_keep_their_own_tables(tmp_path):
    for name in ("a", "b"):
        assert main([*RUN, "--results-dir", str(tmp_path / name)]) == 0
    assert not (tmp_path / "results.csv").exists()  # never the shared parent
    for name in ("a", "b"):
        table = pd.read_csv(tmp_path / name / "results.csv")
        assert table["run"].nunique() == 1 and len(list((tmp_path / name).glob("*.json"))) == 1


def test_a_folder_named_runs_keeps_its_derived_files_beside_it(tmp_path):
    assert derived_root(tmp_path / "results" / "runs") == tmp_path / "results"
    assert derived_root(tmp_path / "mine") == tmp_path / "mine"
    assert main([*RUN, "--results-dir", str(tmp_path / "results" / "runs")]) == 0
    assert (tmp_path / "results" / "results.csv").is_file()


def test_a_second_identical_run_is_told_one_is_in_progress(tmp_path, capsys):
    key = {"model_sha256": "x", "seed": 0}
    first = ResumeState(tmp_path / ".state", "fashion-mnist-standard", key)
    first.start(False)
    second = ResumeState(tmp_path / ".state", "fashion-mnist-standard", key)
    try:
        second.start(True)
        raise AssertionError("the second run was offered a state that is still being written")
    except Exception as exc:  # noqa: BLE001
        assert "another run with these settings is in progress" in str(exc)
    first.finish()
    third = ResumeState(tmp_path / ".state", "fashion-mnist-standard", key)
    third.start(False)  # the first finished: its lock and state are gone
    third.finish()


def test_train_refuses_to_replace_a_checkpoint_unless_told(tmp_path, capsys):
    out = tmp_path / "t.pt"
    argv = ["train", "--defense", "standard", "--epochs", "1", "--max-train-points", "64", "--out", str(out),
            "--quiet"]
    assert main(argv) == 0
    first = out.read_bytes()
    assert main(argv) == 2 and "pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == first
    assert main([*argv, "--overwrite"]) == 0


def test_the_demo_writes_outside_the_committed_results():
    makefile = (REPO / "Makefile").read_text()
    demo = re.search(r"^demo:.*\n\t(.*)$", makefile, re.M).group(1)
    results_dir = demo.split("--results-dir", 1)[1].split()[0]
    assert not results_dir.startswith("results"), demo
    ignored = (REPO / ".gitignore").read_text().split()
    assert f"/{results_dir.split('/')[0]}/" in ignored


def test_committed_results_are_read_from_git_not_the_working_tree(committed):
    """`committed` is what git HEAD holds: a user's extra records in results/runs are not in it."""
    names = {p.name for p in (committed / "runs").glob("*.json")}
    table = pd.read_csv(committed / "results.csv")
    assert {f"{run}.json" for run in table["run"]} == names
    assert json.loads(next((committed / "runs").glob("*.json")).read_text())["schema_version"] in (1, 2)
