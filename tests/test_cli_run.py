"""`bench run` end to end: summary, records, resume, and every bad input as a clear error."""

import json
import re

import pytest

from bench.cli import main
from bench.evaluation import harness
from tests.conftest import read_json


def _run(args, capsys):
    code = main(["run", *args, "--quiet"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_summary_and_record(natural_ckpt, tmp_path, capsys):
    code, out, _ = _run(["--checkpoint", str(natural_ckpt), "--attack", "fgsm,pgd:steps=5", "--n", "40",
                         "--results-dir", str(tmp_path), "--json"], capsys)
    assert code == 0
    summary = json.loads(out)
    assert summary["dataset"] == "fashion-mnist" and summary["n"] == 40 and summary["defense"] == "standard"
    assert set(summary["robust_accuracy"]) == {"fgsm", "pgd:steps=5", "worst_case"}
    assert 0.0 <= summary["robust_accuracy"]["worst_case"] <= summary["clean_accuracy"] <= 1.0
    record = read_json(summary["record"])
    assert record["schema_version"] == 2 and record["purpose"] == "evaluation" and record["model"]["sha256"] and record["data"]["index_sha256"]
    assert record["attacks"]["pgd:steps=5"]["protocol"] == "pgd/v2"
    flags = record["per_example"]
    worst = [a == "1" and b == "1" for a, b in zip(flags["robust"]["fgsm"], flags["robust"]["pgd:steps=5"], strict=True)]
    assert [c == "1" for c in flags["worst_case"]] == worst
    assert record["attacks"]["pgd:steps=5"]["passes"]["backward"] > 0


def test_table_output_and_records_never_overwrite(natural_ckpt, tmp_path, capsys):
    args = ["--checkpoint", str(natural_ckpt), "--attack", "fgsm", "--n", "20", "--results-dir", str(tmp_path)]
    code, out, _ = _run(args, capsys)
    assert code == 0 and "worst case" in out and "95% CI" in out
    _run(args, capsys)
    assert len(list(tmp_path.glob("*.json"))) == 2


class _Interrupt(Exception):
    pass


def test_interrupted_run_resumes_to_identical_flags(natural_ckpt, tmp_path, capsys, monkeypatch):
    args = ["--checkpoint", str(natural_ckpt), "--attack", "fgsm,pgd:steps=5,restarts=2", "--n", "60",
            "--batch-size", "16", "--results-dir", str(tmp_path / "runs"), "--json"]
    assert _run(args, capsys)[0] == 0
    reference = read_json(next((tmp_path / "runs").glob("*.json")))

    real_verify, calls = harness.verify_successes, {"n": 0}

    def verify_then_die(*a, **k):  # dies after 5 batches, like a kill during the run
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real_verify(*a, **k)

    monkeypatch.setattr(harness, "verify_successes", verify_then_die)
    code, _, err = _run([*args[:-3], "--results-dir", str(tmp_path / "again"), "--json"], capsys)
    assert code == 130 and "--resume" in err
    assert not list((tmp_path / "again").glob("*.json"))  # no record for an unfinished run
    monkeypatch.setattr(harness, "verify_successes", real_verify)

    code, _, err = _run([*args[:-3], "--results-dir", str(tmp_path / "again"), "--json"], capsys)
    assert code == 2 and "add --resume" in err  # never silently restarts over saved progress
    code, out, _ = _run([*args[:-3], "--results-dir", str(tmp_path / "again"), "--json", "--resume"], capsys)
    assert code == 0
    resumed = read_json(json.loads(out)["record"])
    assert resumed["per_example"] == reference["per_example"]


def test_resume_with_different_settings_is_refused_with_the_difference(natural_ckpt, tmp_path, capsys,
                                                                         monkeypatch):
    args = ["--checkpoint", str(natural_ckpt), "--attack", "pgd:steps=3", "--n", "40", "--batch-size", "10",
            "--results-dir", str(tmp_path)]
    monkeypatch.setattr(harness, "verify_successes", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    assert _run(args, capsys)[0] == 130
    monkeypatch.undo()
    code, _, err = _run([*args[:-2], "--results-dir", str(tmp_path), "--n", "30", "--resume"], capsys)
    assert code == 2 and "differs in the evaluated points (--n, --sample-seed)" in err


@pytest.mark.parametrize("args, message", [
    (["--defense", "pgd_at"], "Did you mean: pgd-at"),
    (["--defense", "pgd-at", "--eps", "-1"], "invalid ε"),
    (["--defense", "pgd-at", "--eps", "8/0"], "invalid ε"),
    (["--defense", "pgd-at", "--eps", "abc"], "invalid ε"),
    (["--defense", "pgd-at", "--eps", "1.5"], "invalid ε"),
    (["--defense", "pgd-at", "--norm", "l7"], "unknown norm"),
    (["--defense", "pgd-at", "--attack", "pgd:steps=x"], "not a valid int"),
    (["--defense", "pgd-at", "--dataset", "cifar10", "--attack", "pgd"], "no checkpoint of pgd-at for cifar10"),
    (["--defense", "pgd-at", "--device", "cuda:7"], "CUDA is not available|invalid --device"),
    (["--checkpoint", "/nonexistent.pt"], "does not exist"),
])
def test_bad_input_is_a_clear_error_without_traceback(args, message, tmp_path, capsys):
    code, _, err = _run([*args, "--results-dir", str(tmp_path)], capsys)
    assert code == 2
    assert "Traceback" not in err
    assert re.search(message, err), err


def test_missing_dataset_is_a_clear_error(natural_ckpt, tmp_path, capsys):
    code, _, err = _run(["--checkpoint", str(natural_ckpt), "--data-dir", str(tmp_path), "--attack", "fgsm",
                         "--results-dir", str(tmp_path)], capsys)
    assert code == 2 and "dataset-fashion-mnist" in err


def test_html_page_saved_as_checkpoint_is_a_clear_error(natural_copy, tmp_path, capsys):
    natural_copy.write_bytes(b"<!DOCTYPE html><html>Google Drive - Virus scan warning</html>")
    code, _, err = _run(["--checkpoint", str(natural_copy), "--attack", "fgsm", "--results-dir", str(tmp_path)],
                        capsys)
    assert code == 2 and "sha256" in err  # caught by the hash before anything is unpickled


def test_html_page_with_matching_sidecar_hash_is_still_refused(natural_copy, tmp_path, capsys):
    from defenses.training import checkpoints

    natural_copy.write_bytes(b"<!DOCTYPE html><html>quota exceeded</html>")
    side = checkpoints.sidecar_path(natural_copy)
    meta = json.loads(side.read_text())
    meta["sha256"] = checkpoints.sha256_file(natural_copy)
    side.write_text(json.dumps(meta))
    code, _, err = _run(["--checkpoint", str(natural_copy), "--attack", "fgsm", "--results-dir", str(tmp_path)],
                        capsys)
    assert code == 2 and "is an HTML page" in err


def test_expected_sha256_mismatch_is_refused(natural_ckpt, tmp_path, capsys):
    code, _, err = _run(["--checkpoint", str(natural_ckpt), "--sha256", "0" * 64, "--attack", "fgsm",
                         "--results-dir", str(tmp_path)], capsys)
    assert code == 2 and "--sha256 expects" in err


def test_checkpoint_for_another_architecture_is_refused(natural_copy, tmp_path, capsys):
    from defenses.training import checkpoints

    side = checkpoints.sidecar_path(natural_copy)
    meta = json.loads(side.read_text())
    meta["arch"] = "resnet18"
    side.write_text(json.dumps(meta))
    code, _, err = _run(["--checkpoint", str(natural_copy), "--attack", "fgsm", "--results-dir", str(tmp_path)],
                        capsys)
    assert code == 2 and "does not match architecture 'resnet18'" in err


def test_ls_lists_attacks_defenses_and_datasets(capsys):
    for what, expected in (("attacks", "apgd-t"), ("defenses", "pgd-at"), ("datasets", "fashion-mnist")):
        assert main(["ls", what]) == 0
        assert expected in capsys.readouterr().out


def test_randomized_checkpoint_is_refused_and_allowed_only_explicitly(natural_copy, tmp_path, capsys):
    """A model with noise in its forward pass: point estimates would be unreliable."""
    import torch

    from defenses.nets.archs import ARCHS, SmallCNN
    from defenses.training import checkpoints

    class NoisySmallCNN(SmallCNN):
        def forward(self, x):
            return super().forward(x + 0.05 * torch.randn_like(x))

    if "test-noisy-smallcnn" not in ARCHS:
        ARCHS.add("test-noisy-smallcnn", lambda spec: NoisySmallCNN(spec))
    side = checkpoints.sidecar_path(natural_copy)
    meta = read_json(side)
    side.write_text(json.dumps({**meta, "arch": "test-noisy-smallcnn"}))
    args = ["--checkpoint", str(natural_copy), "--attack", "fgsm", "--n", "20", "--results-dir", str(tmp_path)]
    code, _, err = _run(args, capsys)
    assert code == 2 and "randomized" in err and "aa-rand" in err
    code, out, _ = _run([*args, "--allow-randomized", "--json"], capsys)
    assert code == 0 and any("randomized" in w for w in read_json(json.loads(out)["record"])["warnings"])


def test_stages_with_no_point_left_are_skipped(natural_ckpt, tmp_path, capsys):
    """APGD-CE breaks every point of the natural model, so APGD-T, FAB-T and Square get none."""
    code, out, _ = _run(["--checkpoint", str(natural_ckpt), "--attack", "aa", "--n", "12", "--results-dir",
                         str(tmp_path), "--json"], capsys)
    assert code == 0
    record = read_json(json.loads(out)["record"])
    assert record["attacks"]["aa"]["robust_accuracy"] == 0.0
    assert {b for b in record["per_example"]["broken_first_by"] if b} == {"aa/apgd-ce"}


def test_a_randomized_models_claims_that_a_fresh_draw_denies_are_dropped_not_a_bug(natural_model, points):
    """Verification draws the model's noise again: a success it does not confirm counts as robust
    on a model the guards found randomized, and is a bug in the attack on any other."""
    import pytest
    import torch

    from bench.errors import VerificationError
    from bench.threat import Norm, ThreatModel
    from bench.verify import verify_successes

    x = points[0][:8]
    y = natural_model.predict(x)  # every point stays correct: each claimed success is denied
    claims = torch.ones(8, dtype=torch.bool)
    threat = ThreatModel(Norm.LINF, 0.1)
    with pytest.raises(VerificationError, match="still classified correctly"):
        verify_successes(natural_model, x, x, y, claims, threat, "fgsm")
    natural_model.randomized = True
    try:
        assert not bool(verify_successes(natural_model, x, x, y, claims, threat, "fgsm").any())
    finally:
        natural_model.randomized = False
