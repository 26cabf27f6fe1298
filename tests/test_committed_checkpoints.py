"""The committed Fashion-MNIST checkpoints are what they claim: every published defense robust, standard not."""

import json

import pytest

from bench.cli import main
from defenses import published

PUBLISHED = published("fashion-mnist")
ADVERSARIAL = [n for n in PUBLISHED if n != "standard"]


def _run(defense: str, attack: str, n: int, tmp_path, capsys) -> dict:
    code = main(["run", "--defense", defense, "--attack", attack, "--n", str(n), "--results-dir",
                 str(tmp_path), "--json", "--quiet"])
    assert code == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def standard_pgd(tmp_path_factory) -> float:
    """PGD accuracy of the natural model, computed once (module fixtures cannot use capsys)."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["run", "--defense", "standard", "--attack", "pgd", "--n", "200", "--results-dir",
                     str(tmp_path_factory.mktemp("runs")), "--json", "--quiet"]) == 0
    summary = json.loads(out.getvalue())
    assert summary["clean_accuracy"] > 0.85
    return float(summary["robust_accuracy"]["pgd"])


@pytest.mark.parametrize("defense", ADVERSARIAL)
def test_every_defense_beats_standard_by_a_wide_margin_under_pgd(defense, standard_pgd, tmp_path, capsys):
    summary = _run(defense, "pgd", 200, tmp_path, capsys)
    assert summary["defense"] == defense and summary["clean_accuracy"] > 0.6
    assert standard_pgd < 0.05
    assert summary["robust_accuracy"]["pgd"] > standard_pgd + 0.3


@pytest.mark.slow
@pytest.mark.parametrize("defense", PUBLISHED)
def test_every_published_defense_runs_autoattack_from_its_committed_checkpoint(defense, tmp_path, capsys):
    robust = _run(defense, "aa", 50, tmp_path, capsys)["robust_accuracy"]["aa"]
    if defense == "standard":
        assert robust < 0.05
    else:
        assert robust > 0.3
