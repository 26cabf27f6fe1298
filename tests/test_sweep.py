"""`bench sweep`: incremental over checkpoints, resumable, and ends with the derived files rebuilt."""

import json
import shutil

from bench.cli import main
from bench.evaluation import harness
from bench.loading.sources import factory_identity
from defenses.training import checkpoints
from tests.conftest import COMMITTED


def _folder(natural_ckpt, tmp_path):
    """Two different checkpoints (the sweep keys on sha256: copies of one file are one checkpoint)."""
    folder = tmp_path / "ckpts"
    folder.mkdir()
    for name, source in (("a.pt", natural_ckpt), ("b.pt", COMMITTED / "pgd-at-smallcnn.pt")):
        shutil.copy(source, folder / name)
        shutil.copy(checkpoints.sidecar_path(source), checkpoints.sidecar_path(folder / name))
    return folder


def _sweep(folder, runs, attack, *extra):
    return main(["sweep", "--checkpoints-dir", str(folder), "--attack", attack, "--n", "24", "--batch-size", "8",
                 "--results-dir", str(runs), "--quiet", *extra])


def _records(runs):
    return sorted(runs.glob("*.json"))


def test_sweep_skips_what_is_recorded_and_force_reruns(natural_ckpt, tmp_path, capsys):
    folder, runs = _folder(natural_ckpt, tmp_path), tmp_path / "runs"
    assert _sweep(folder, runs, "fgsm") == 0
    assert len(_records(runs)) == 2 and (tmp_path / "LEADERBOARD.md").is_file() and (tmp_path / "results.csv").is_file()
    capsys.readouterr()
    assert _sweep(folder, runs, "fgsm") == 0
    assert "a: nothing to do (already recorded: fgsm)" in capsys.readouterr().out
    assert len(_records(runs)) == 2
    shutil.copy(folder / "a.pt", folder / "a-copy.pt")  # the same sha256 under another name: recorded
    shutil.copy(checkpoints.sidecar_path(folder / "a.pt"), checkpoints.sidecar_path(folder / "a-copy.pt"))
    assert _sweep(folder, runs, "fgsm") == 0
    assert "a-copy: nothing to do" in capsys.readouterr().out
    (folder / "a-copy.pt").unlink()
    before = set(_records(runs))
    assert _sweep(folder, runs, "fgsm,pgd:steps=2") == 0  # only the new attack runs
    new = [json.loads(p.read_text()) for p in set(_records(runs)) - before]
    assert [list(r["attacks"]) for r in new] == [["pgd:steps=2"], ["pgd:steps=2"]]
    assert _sweep(folder, runs, "fgsm", "--force") == 0
    assert len(_records(runs)) == 6


def test_interrupted_sweep_resumes_to_the_same_flags(natural_ckpt, tmp_path, monkeypatch, capsys):
    folder = _folder(natural_ckpt, tmp_path)
    assert _sweep(folder, tmp_path / "reference", "pgd:steps=3") == 0
    reference = {json.loads(p.read_text())["model"]["label"]: json.loads(p.read_text())["per_example"]
                 for p in _records(tmp_path / "reference")}

    real, calls = harness.verify_successes, {"n": 0}

    def dies_in_the_second_checkpoint(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:  # 3 batches per checkpoint: the second one is half done
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(harness, "verify_successes", dies_in_the_second_checkpoint)
    runs = tmp_path / "runs"
    assert _sweep(folder, runs, "pgd:steps=3") == 130
    assert len(_records(runs)) == 1 and list((runs / ".state").glob("*.json"))
    monkeypatch.setattr(harness, "verify_successes", real)
    capsys.readouterr()
    assert _sweep(folder, runs, "pgd:steps=3") == 0
    assert "a: nothing to do" in capsys.readouterr().out
    resumed = {json.loads(p.read_text())["model"]["label"]: json.loads(p.read_text()) for p in _records(runs)}
    assert {k: r["per_example"] for k, r in resumed.items()} == reference
    assert resumed["b"]["config"]["resumed"] is True and not list((runs / ".state").glob("*.json"))


def test_eps_sweep_records_one_run_per_eps_and_skips_them_next_time(natural_ckpt, tmp_path, capsys):
    folder, runs = _folder(natural_ckpt, tmp_path), tmp_path / "runs"
    assert _sweep(folder, runs, "fgsm", "--eps-sweep", "0.05,0.1") == 0
    records = [json.loads(p.read_text()) for p in _records(runs)]
    assert sorted((r["model"]["label"], r["threat"]["eps"]) for r in records) == [
        ("a", 0.05), ("a", 0.1), ("b", 0.05), ("b", 0.1)]
    assert {r["purpose"] for r in records} == {"eps-sweep"}
    capsys.readouterr()
    assert _sweep(folder, runs, "fgsm", "--eps-sweep", "0.1,0.05") == 0
    assert capsys.readouterr().out.count("nothing to do") == 4


def test_run_eps_sweep_needs_two_values(natural_ckpt, tmp_path, capsys):
    code = main(["run", "--checkpoint", str(natural_ckpt), "--attack", "fgsm", "--eps-sweep", "0.1",
                 "--results-dir", str(tmp_path), "--quiet"])
    assert code == 2 and "at least two distinct ε" in capsys.readouterr().err


def test_folder_without_checkpoints_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "lonely.pt").write_bytes(b"no sidecar next to me")
    assert _sweep(tmp_path, tmp_path / "runs", "fgsm") == 2
    assert "no checkpoints with sidecars" in capsys.readouterr().err


def test_a_user_model_spec_is_swept_and_skipped_by_its_sha256(tmp_path, capsys):
    runs = tmp_path / "runs"
    model = ["--model", "examples.toy_models:plain_smallcnn", "--weights", str(COMMITTED / "pgd-at-smallcnn.pt")]
    args = ["sweep", *model, "--attack", "fgsm", "--n", "16", "--results-dir", str(runs), "--quiet"]
    assert main(args) == 0
    (record,) = [json.loads(p.read_text()) for p in _records(runs)]
    assert record["model"]["source"] == "factory" and record["model"]["label"] == "plain_smallcnn"
    weights = checkpoints.read_sidecar(COMMITTED / "pgd-at-smallcnn.pt")["sha256"]
    assert record["model"]["sha256"] == factory_identity("examples.toy_models:plain_smallcnn", weights)
    capsys.readouterr()
    assert main(args) == 0
    assert "plain_smallcnn: nothing to do (already recorded: fgsm)" in capsys.readouterr().out


def test_a_bf16_sweep_is_recorded_as_bf16_and_counts_as_done_in_fp32(natural_ckpt, tmp_path, capsys):
    folder, runs = _folder(natural_ckpt, tmp_path), tmp_path / "runs"
    assert _sweep(folder, runs, "fgsm,pgd:steps=3", "--precision", "bf16") == 0
    records = [json.loads(p.read_text()) for p in _records(runs)]
    assert {r["provenance"]["precision"] for r in records} == {"bf16"} and len(records) == 2
    natural = next(r for r in records if r["model"]["label"] == "a")
    assert natural["worst_case"]["count"] < natural["clean"]["count"]  # successes held in fp32
    capsys.readouterr()
    assert _sweep(folder, runs, "fgsm,pgd:steps=3") == 0
    assert capsys.readouterr().out.count("nothing to do") == 2


def test_a_sweep_in_arithmetic_the_device_lacks_is_one_line(natural_ckpt, tmp_path, capsys):
    assert _sweep(_folder(natural_ckpt, tmp_path), tmp_path / "runs", "fgsm", "--precision", "fp16",
                  "--device", "cpu") == 2
    assert "fp16 needs CUDA" in capsys.readouterr().err
