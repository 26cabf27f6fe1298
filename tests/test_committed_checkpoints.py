"""The committed Fashion-MNIST checkpoints are what they claim: PGD-AT robust, standard not."""

import json

import pytest

from bench.cli import main


def _robust(defense: str, attack: str, n: int, tmp_path, capsys) -> dict:
    code = main(["run", "--defense", defense, "--attack", attack, "--n", str(n), "--results-dir",
                 str(tmp_path), "--json", "--quiet"])
    assert code == 0
    return json.loads(capsys.readouterr().out)


def test_pgd_at_is_robust_to_pgd_and_standard_is_not(tmp_path, capsys):
    robust = _robust("pgd-at", "pgd", 200, tmp_path, capsys)
    assert robust["defense"] == "pgd-at" and robust["clean_accuracy"] > 0.75
    assert robust["robust_accuracy"]["pgd"] > 0.55
    natural = _robust("standard", "pgd", 200, tmp_path, capsys)
    assert natural["clean_accuracy"] > 0.85 and natural["robust_accuracy"]["pgd"] < 0.05


@pytest.mark.slow
def test_pgd_at_is_robust_to_autoattack_and_standard_is_not(tmp_path, capsys):
    robust = _robust("pgd-at", "aa", 200, tmp_path, capsys)["robust_accuracy"]["aa"]
    natural = _robust("standard", "aa", 200, tmp_path, capsys)["robust_accuracy"]["aa"]
    assert robust > 0.5 and natural < 0.02
