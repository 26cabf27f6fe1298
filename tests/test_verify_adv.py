"""`bench verify-adv`: our own `--save-adv` files round-trip to the same per-example flags, are
recorded as external:NAME (worst case, results table, leaderboard details), and a tampered file —
a pixel moved outside the ball, another point's index, another ε — is refused in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from bench.cli import main


def _one_line_refusal(argv: list[str], capsys, fragment: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and fragment in err, err


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, Path]:
    """A pgd run on 30 points of pgd-at with its adversarial examples kept."""
    runs = tmp_path_factory.mktemp("verify") / "runs"
    assert main(["run", "--defense", "pgd-at", "--attack", "pgd", "--n", "30", "--save-adv", "--quiet",
                 "--results-dir", str(runs)]) == 0
    record = next(runs.glob("*.json"))
    return record, record.with_suffix(".adv.pt")


def _verify(adv: Path, runs: Path, *extra: str) -> list[str]:
    return ["verify-adv", "--defense", "pgd-at", "--adv", str(adv), "--results-dir", str(runs), *extra]


def test_our_own_file_round_trips_to_the_same_flags_and_is_recorded_as_external(saved, tmp_path, capsys):
    record, adv = saved
    runs = tmp_path / "runs"
    shutil.copytree(record.parent, runs)
    assert main(_verify(runs / adv.name, runs, "--name", "ours", "--source", "https://example.org/ours")) == 0
    assert "external:ours" in capsys.readouterr().out
    ours = [json.loads(p.read_text()) for p in runs.glob("*.json") if p.name != record.name]
    assert len(ours) == 1
    original, external = json.loads(record.read_text()), ours[0]
    assert external["per_example"]["index"] == original["per_example"]["index"]
    assert external["per_example"]["robust"]["external:ours"] == original["per_example"]["robust"]["pgd"]
    config = external["attacks"]["external:ours"]["config"]
    assert config["source"] == "https://example.org/ours" and len(config["sha256"]) == 64
    assert external["data"]["selection"] == f"the points of {adv.name}"
    assert "external:ours" in (tmp_path / "results.csv").read_text()
    assert main(["leaderboard", "--results-dir", str(runs)]) == 0
    board = (tmp_path / "LEADERBOARD.md").read_text()
    assert "external evaluations (re-verified by `bench verify-adv`): `external:ours`" in board
    assert "[https://example.org/ours](https://example.org/ours)" in board


def _tampered(adv: Path, tmp_path: Path, change) -> Path:
    saved = torch.load(adv, weights_only=True)
    change(saved)
    out = tmp_path / "tampered.adv.pt"
    torch.save(saved, out)
    return out


def test_a_pixel_moved_outside_the_ball_is_refused(saved, tmp_path, capsys):
    def move(s):
        s["x_adv"][3, 0, 14, 14] = (s["x_adv"][3, 0, 14, 14] + 0.3).clamp(0, 1) if s["x_adv"][3, 0, 14, 14] < 0.6 \
            else s["x_adv"][3, 0, 14, 14] - 0.3

    _one_line_refusal(_verify(_tampered(saved[1], tmp_path, move), tmp_path / "runs"), capsys,
                      "example 3 (test index 3) is")
    assert not (tmp_path / "runs").exists()


def test_another_points_index_is_refused(saved, tmp_path, capsys):
    def swap(s):
        s["index"][0] = 999

    _one_line_refusal(_verify(_tampered(saved[1], tmp_path, swap), tmp_path / "runs"), capsys,
                      "(test index 999)")


def test_another_eps_is_refused_asked_or_claimed(saved, tmp_path, capsys):
    _one_line_refusal(_verify(saved[1], tmp_path / "runs", "--eps", "0.05"), capsys, "not linf eps=0.05")

    def shrink(s):
        s["eps"] = 0.05

    _one_line_refusal(_verify(_tampered(saved[1], tmp_path, shrink), tmp_path / "runs"), capsys, "beyond ε=0.05")


def test_files_not_in_the_format_are_refused(saved, tmp_path, capsys):
    def old(s):
        del s["format"]

    _one_line_refusal(_verify(_tampered(saved[1], tmp_path, old), tmp_path / "runs"), capsys, "expected 'bench-adv'")

    def other_dataset(s):
        s["dataset"] = "mnist"

    _one_line_refusal(_verify(_tampered(saved[1], tmp_path, other_dataset), tmp_path / "runs"), capsys,
                      "for mnist, not fashion-mnist")


def test_external_through_bench_run_refuses_points_the_file_does_not_cover(saved, tmp_path, capsys):
    _one_line_refusal(["run", "--defense", "pgd-at", "--attack", f"external:{saved[1]}", "--n", "40",
                       "--results-dir", str(tmp_path / "runs"), "--quiet"], capsys, "no adversarial example within ε")
