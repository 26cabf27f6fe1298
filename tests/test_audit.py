"""`bench audit`: each check fails on a model broken for it; a masked model is flagged and its
audit worst case falls to its true level; audits never overwrite and feed the leaderboard."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from bench.attacks import parse_attacks
from bench.auditing import checks as sanity
from bench.auditing.checks import Check, CheckResult
from bench.auditing.report import AuditSummary
from bench.auditing.runner import _adaptive_gap, probe
from bench.cli import main
from bench.evaluation.config import RunConfig
from bench.evaluation.resolve import resolve_model
from bench.loading.sources import ModelSpec
from bench.reporting import markdown as leaderboard
from bench.stats import Proportion
from bench.threat import Norm, ThreatModel
from tests.conftest import COMMITTED
from tests.synthetic import attack, record, typed

WEIGHTS = COMMITTED / "standard-smallcnn.pt"
LINF = ThreatModel(Norm.LINF, 0.1)


def _probe(factory: str, points):
    cfg = RunConfig("fashion-mnist", LINF, parse_attacks("fgsm"), model=ModelSpec(f"examples.toy_models:{factory}", weights=WEIGHTS))
    probed = probe(resolve_model(cfg), cfg, points[0][:50], points[1][:50])
    return {c.check: c for c in probed.checks}, probed.refused


def test_a_healthy_model_passes_every_probe(points):
    checks, refused = _probe("plain_smallcnn", points)
    assert refused is None and all(c.passed for c in checks.values()), checks


def test_gradient_masking_fails_both_gradient_probes(points):
    checks, refused = _probe("rounded_smallcnn", points)
    assert refused is None
    assert not checks[sanity.Check.GRADIENTS].passed and "50 of 50" in checks[sanity.Check.GRADIENTS].detail
    assert not checks[sanity.Check.AUTOATTACK_PROBE].passed
    assert "zero gradient" in checks[sanity.Check.AUTOATTACK_PROBE].detail


def test_probabilities_are_flagged_and_make_the_model_not_evaluable(points):
    checks, refused = _probe("softmax_smallcnn", points)
    assert "probability distribution" in checks[sanity.Check.AUTOATTACK_PROBE].detail
    assert refused is not None and "probabilities" in refused


def test_a_random_model_is_flagged_and_not_evaluable(points):
    checks, refused = _probe("noisy_smallcnn", points)
    assert "randomized defense" in checks[sanity.Check.AUTOATTACK_PROBE].detail
    assert refused is not None and "randomized" in refused


def test_auditing_a_model_of_the_wrong_input_shape_is_an_input_error(tmp_path, capsys):
    assert main(["audit", "--model", "tests.user_models:cifar_shaped_mlp", "--n", "10",
                 "--results-dir", str(tmp_path / "runs")]) == 2
    assert "fails on inputs of shape (1, 28, 28)" in capsys.readouterr().err
    assert not (tmp_path / "audits").exists()


def test_the_api_audit_writes_its_report_where_the_board_reads_audits(tmp_path):
    """`bench.audit` once returned the audit and wrote no report, so the board said "not audited"."""
    import bench
    from bench.auditing.report import load_audits

    result = bench.audit("examples.toy_models:softmax_smallcnn", weights=WEIGHTS, n=10,
                         results_dir=tmp_path / "runs")  # refused at the probe: no attack runs
    assert result.report is not None and result.report.parent == tmp_path / "audits" and result.report.is_file()
    (written,) = load_audits(tmp_path / "audits")  # and valid: a refused audit once wrote n = 0
    assert (written.verdict, written.sha256, written.n) == (result.verdict.value, result.sha256, 10)


def test_adaptive_gap_allows_noise_not_a_real_gap():
    robust = np.ones(100, dtype=bool)
    assert _adaptive_gap(robust, robust).passed
    one = robust.copy()
    one[0] = False
    assert _adaptive_gap(robust, one).passed  # 1 of 100: within the 1% allowance
    ten = robust.copy()
    ten[:10] = False
    result = _adaptive_gap(robust, ten)
    assert not result.passed and "broke 10 of 100" in result.detail


@pytest.fixture(scope="module")
def masked_audit(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit")
    argv = ["audit", "--model", "examples.toy_models:rounded_smallcnn", "--weights", str(WEIGHTS), "--n", "40",
            "--standard", "fgsm,pgd", "--adaptive", "square-long:queries=300",
            "--strength", "pgd:steps=2,pgd:steps=5", "--binarization-points", "10", "--baseline", "noise:draws=200",
            "--results-dir", str(root / "runs"), "--quiet"]
    code = main(argv)
    return root, argv, code


def test_the_audit_flags_a_masked_user_model_and_finds_its_true_robustness(masked_audit):
    root, _, code = masked_audit
    assert code == 1
    summary = json.loads(next((root / "audits").glob("*.json")).read_text())
    assert summary["verdict"] == "gradient masking"
    standard, audit = summary["robust"]["worst_case"]["standard"], summary["robust"]["worst_case"]["audit"]
    assert standard[0] / standard[1] > 0.6  # what PGD reports
    assert audit[0] / audit[1] <= 0.05  # the standard CNN behind the rounding: ≈ 0%
    failed = {c["check"] for c in summary["checks"] if not c["passed"]}
    assert {"gradients", "autoattack-probe", "black-box", "adaptive", "binarization", "noise", "unbounded-eps"} <= failed
    assert summary["binarization"]["attacks"]["pgd"]["passed"] == 0  # rounding hides the boundary point
    report = next((root / "audits").glob("*.md")).read_text()
    assert "**Verdict: gradient masking**" in report and "broken only by adaptive" in report
    assert "## Binarization test" in report
    assert "Standard attacks: `fgsm,pgd`; adaptive: `square-long:queries=300`" in report  # as typed, not reprs
    records = [json.loads(p.read_text()) for p in (root / "runs").glob("*.json")]
    assert any("audit: gradients:" in w for r in records for w in r["warnings"])  # marks in the records


def test_a_second_audit_reuses_the_records_and_never_overwrites(masked_audit):
    root, argv, _ = masked_audit
    before = sorted(p.name for p in (root / "runs").glob("*.json"))
    assert main(argv) == 1
    assert sorted(p.name for p in (root / "runs").glob("*.json")) == before
    assert len(list((root / "audits").glob("*.json"))) == 2
    board = (root / "LEADERBOARD.md").read_text()
    row = next(line for line in board.splitlines() if "`rounded_smallcnn`" in line)
    assert "[gradient masking](audits/" in row and re.search(r"\] ⚠ +\|", row)
    assert re.search(r"sanity checks: ⚠ [^\n]*gradients", board.split("### Details")[1])


def test_leaderboard_takes_the_newest_audit_of_the_same_checkpoint_and_threat():
    good = record({"pgd": attack("1" * 60 + "0" * 40, "pgd")}, sha="a" * 64, label="good", file="1.json")

    def audit(verdict, date, passed):
        return AuditSummary(
            f"{date}.json", date, "good", "a" * 64, "fashion-mnist", ThreatModel(Norm.LINF, 0.1), 100, verdict,
            {"aa": Proportion(60, 100)}, {"ra-aux": Proportion(51, 100)},
            {"standard": Proportion(60, 100), "adaptive": Proportion(51, 100), "audit": Proportion(50, 100)},
            (CheckResult(Check.ADAPTIVE, passed, "adaptive attacks broke 9 of 60"),
             CheckResult(Check.EPS_CURVE, False, "recomputed from records, not copied")), None)

    markdown, _ = leaderboard.render(typed(good), [audit("no sign of masking", "2026-01-01", True),
                                              audit("overstated by standard attacks", "2026-02-01", False)])
    row = next(line for line in markdown.splitlines() if re.match(r"\| 1 ", line))
    assert "[overstated by standard attacks](audits/2026-02-01.md)" in row and re.search(r"\] ⚠ +\|", row)
    assert "⚠ adaptive" in markdown.split("### Details")[1]
    assert "recomputed" not in markdown
    audit_row = next(line for line in markdown.splitlines() if line.startswith("| `good`"))
    assert re.search(r"\| 60.0 +\|", audit_row) and "ra-aux 51.0" in audit_row and "**50.0**" in audit_row
