"""Randomized defenses evaluated instead of refused: predictions are majority votes over draws,
runs are reproducible, single-draw PGD overstates a randomization defense that EOT-PGD breaks, and
the audit says so."""

from __future__ import annotations

import json

import torch

from bench.cli import main
from bench.loading.model import ModelUnderTest
from tests.conftest import COMMITTED

RESIZE_PAD = ["--model", "examples.toy_models:resize_pad_smallcnn", "--weights", str(COMMITTED / "standard-smallcnn.pt")]
NOISY_PGD_AT = ["--model", "examples.toy_models:noisy_smallcnn", "--weights", str(COMMITTED / "pgd-at-smallcnn.pt")]


def _run(tmp_path, *extra: str) -> dict:
    assert main(["run", *RESIZE_PAD, "--allow-randomized", "--n", "80", "--attack", "pgd,eot-pgd:samples=5",
                 "--results-dir", str(tmp_path), "--quiet", *extra]) == 0
    return json.loads(max(tmp_path.glob("*.json")).read_text())


def test_single_draw_pgd_overstates_random_resizing_that_eot_pgd_breaks(tmp_path):
    record = _run(tmp_path)
    attacks = record["attacks"]
    pgd, eot = attacks["pgd"]["count"], attacks["eot-pgd:samples=5"]["count"]
    assert eot <= 3 < 8 <= pgd, (pgd, eot)  # the CNN behind the randomization is ≈ 0% robust
    assert record["config"]["randomized_draws"] == 21 and record["config"]["randomized_rule"] == "majority vote"
    assert any("did not hold in the majority vote over 21 draws" in w for w in attacks["pgd"]["warnings"])


def test_a_randomized_run_is_reproducible_from_its_seed(tmp_path):
    first = _run(tmp_path / "a")["per_example"]
    second = _run(tmp_path / "b")["per_example"]
    assert first["clean_correct"] == second["clean_correct"] and first["robust"] == second["robust"]


def test_predictions_of_a_randomized_model_are_majority_votes(points):
    class Flaky(torch.nn.Module):
        """Class 3 on four calls of five, class 7 on the fifth."""

        def __init__(self) -> None:
            super().__init__()
            self.calls, self.anchor = 0, torch.nn.Parameter(torch.zeros(()))

        def forward(self, x):
            self.calls += 1
            logits = torch.zeros(x.shape[0], 10) + self.anchor
            logits[:, 7 if self.calls % 5 == 0 else 3] = 1.0
            return logits

    model = ModelUnderTest(Flaky(), 10)
    assert set(model.predict(points[0][:5]).tolist()) == {3}  # one forward: the first call says 3
    model.randomized, model.draws = True, 5
    for _ in range(5):
        assert model.predict(points[0][:5]).tolist() == [3] * 5  # the vote, whichever call says 7


def test_the_audit_of_a_randomized_defense_runs_eot_pgd_and_says_standard_attacks_overstate_it(tmp_path):
    runs = tmp_path / "runs"
    argv = ["audit", *NOISY_PGD_AT, "--n", "60", "--standard", "fgsm,pgd", "--adaptive", "square-long:queries=100",
            "--baseline", "noise:draws=50", "--strength", "pgd:steps=2,pgd:steps=5", "--results-dir", str(runs),
            "--quiet"]
    assert main(argv) == 1  # without --allow-randomized: not evaluable, a single-draw number would mislead
    refused = json.loads(next((tmp_path / "audits").glob("*.json")).read_text())
    assert refused["verdict"] == "not evaluable" and "randomized" in refused["headline"]
    assert main([*argv, "--allow-randomized"]) == 1
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "audits").glob("*.json")]
    summary = next(a for a in summaries if a["verdict"] != "not evaluable")
    assert "eot-pgd" in summary["robust"]["adaptive"]
    assert summary["verdict"] == "overstated by standard attacks", summary["headline"]
    assert summary["binarization"]["applicable"] is False and "randomized" in summary["binarization"]["note"]


def test_evaluating_a_randomized_model_leaves_the_callers_random_stream_alone():
    """The harness seeds torch's global generator for the model's draws (and AutoAttack seeds it
    too); a training loop that calls bench.evaluate between steps must draw the same numbers as if
    it had not."""
    import bench

    model = bench.load(NOISY_PGD_AT[1], weights=NOISY_PGD_AT[3])  # building the module draws its init
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    result = bench.evaluate(model, attacks="fgsm,apgd-ce", n=8, allow_randomized=True)
    assert result.n == 8 and torch.equal(torch.rand(3), expected)
