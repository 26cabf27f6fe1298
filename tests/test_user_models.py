"""`--model`: user factories, TorchScript / torch.export files, RobustBench, declared inputs, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import bench
from bench.cli import main
from bench.errors import BenchError, ModelGuardError
from bench.loading.guards import preflight
from bench.loading.model import ModelUnderTest
from bench.loading.sources import (
    InputRange,
    ModelSpec,
    Preprocessing,
    SourceKind,
    factory_identity,
    load_user_model,
    sha256_file,
)
from defenses.training import checkpoints
from tests.conftest import read_json, write_zoo_model

PLAIN = "examples.toy_models:plain_smallcnn"


def _logits(loaded_module: nn.Module, x: torch.Tensor, spec_norm: tuple | None = None) -> torch.Tensor:
    with torch.no_grad():
        return ModelUnderTest(loaded_module, 10, *(spec_norm or (None, None))).eval()(x)


@pytest.fixture(scope="module")
def reference(natural_ckpt: Path) -> nn.Module:
    return checkpoints.load(natural_ckpt)[0]


def test_factory_with_weights_gives_the_checkpoints_logits_and_hash(natural_ckpt, reference, points):
    loaded = load_user_model(ModelSpec(PLAIN, weights=natural_ckpt), "fashion-mnist", "linf")
    x = points[0][:16]
    assert loaded.kind is SourceKind.FACTORY and loaded.sha256 == factory_identity(PLAIN, sha256_file(natural_ckpt))
    assert torch.equal(_logits(loaded.module, x), _logits(reference, x))


def test_the_same_weights_behind_other_code_are_another_model(natural_ckpt):
    """A rounding layer in front of the standard CNN must not share its records (an audit would
    reuse them); the weights file's own sha256 still pins the weights."""
    plain = load_user_model(ModelSpec(PLAIN, weights=natural_ckpt), "fashion-mnist", "linf")
    rounded = load_user_model(ModelSpec("examples.toy_models:rounded_smallcnn", weights=natural_ckpt),
                              "fashion-mnist", "linf", expected_sha256=sha256_file(natural_ckpt))
    assert plain.sha256 != rounded.sha256 != sha256_file(natural_ckpt)
    again = load_user_model(ModelSpec(PLAIN, weights=natural_ckpt), "fashion-mnist", "linf",
                            expected_sha256=plain.sha256)  # what a gate baseline pins
    assert again.sha256 == plain.sha256
    with pytest.raises(BenchError, match="--sha256 expects"):
        load_user_model(ModelSpec(PLAIN, weights=natural_ckpt), "fashion-mnist", "linf", expected_sha256="0" * 64)


def test_torchscript_and_export_files_load_by_path(tmp_path, reference, points):
    x = points[0][:8]
    scripted = tmp_path / "net.ts.pt"
    torch.jit.save(torch.jit.trace(reference.eval(), x), str(scripted))
    exported = tmp_path / "net.pt2"
    batch = torch.export.Dim("batch", min=1, max=1024)
    torch.export.save(torch.export.export(reference.eval(), (x,), dynamic_shapes=({0: batch},)), str(exported))
    # both carry code for their loaders: only with --trust-checkpoint
    for path, kind in ((scripted, SourceKind.TORCHSCRIPT), (exported, SourceKind.EXPORT)):
        with pytest.raises(BenchError, match="could run code"):
            load_user_model(ModelSpec(str(path)), "fashion-mnist", "linf")
        loaded = load_user_model(ModelSpec(str(path), trust=True), "fashion-mnist", "linf")
        assert loaded.kind is kind and loaded.sha256 == sha256_file(path)
        assert torch.allclose(_logits(loaded.module, x), _logits(reference, x), atol=1e-5)


def test_declared_input_range_and_normalization_put_the_preprocessing_inside(natural_ckpt, reference, points):
    x = points[0][:8]
    want = _logits(reference, x)
    for factory, extra in (("tests.user_models:bytes_smallcnn", {"input_range": InputRange.BYTE}),
                           ("tests.user_models:normalized_smallcnn", {"mean": (0.5,), "std": (0.25,)})):
        loaded = load_user_model(ModelSpec(factory, weights=natural_ckpt, **extra), "fashion-mnist", "linf")
        got = _logits(loaded.module, x, loaded.preprocessing.pixel_normalization())
        assert torch.allclose(got, want, atol=1e-4), factory
    undeclared = load_user_model(ModelSpec("tests.user_models:bytes_smallcnn", weights=natural_ckpt),
                                 "fashion-mnist", "linf")
    assert not torch.allclose(_logits(undeclared.module, x), want, atol=1e-2)


def test_a_sidecar_next_to_the_weights_declares_the_normalization(natural_ckpt, reference, points, tmp_path):
    weights = tmp_path / "w.pt"
    weights.write_bytes(natural_ckpt.read_bytes())
    weights.with_suffix(".json").write_text(json.dumps({"mean": [0.5], "std": [0.25]}))
    loaded = load_user_model(ModelSpec("tests.user_models:normalized_smallcnn", weights=weights),
                             "fashion-mnist", "linf")
    x = points[0][:8]
    assert torch.allclose(_logits(loaded.module, x, loaded.preprocessing.pixel_normalization()),
                          _logits(reference, x), atol=1e-4)


def test_robustbench_model_through_the_model_flag_offline(tmp_path):
    net, path = write_zoo_model(tmp_path)
    loaded = load_user_model(ModelSpec("robustbench:Wong2020Fast", model_dir=tmp_path), "cifar10", "linf")
    assert loaded.kind is SourceKind.ROBUSTBENCH and loaded.sha256 == sha256_file(path)
    assert loaded.label == "robustbench-Wong2020Fast"
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded.module(x), net.eval()(x))
    with pytest.raises(BenchError, match="sha256"):
        load_user_model(ModelSpec("robustbench:Wong2020Fast", model_dir=tmp_path), "cifar10", "linf", "ab" * 32)


def test_bench_run_evaluates_a_robustbench_model_end_to_end(tmp_path, tiny_cifar, capsys):
    _, path = write_zoo_model(tmp_path / "zoo")
    assert main(["run", "--model", "robustbench:Wong2020Fast", "--model-dir", str(tmp_path / "zoo"),
                 "--dataset", "cifar10", "--threat", "Linf", "--data-dir", str(tiny_cifar), "--attack", "fgsm",
                 "--n", "6", "--results-dir", str(tmp_path / "runs"), "--quiet", "--json"]) == 0
    record = read_json(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["record"])
    assert record["model"]["source"] == "robustbench" and record["model"]["sha256"] == sha256_file(path)
    assert record["threat"] == {"norm": "linf", "eps": 8 / 255}


# ----------------------------------------------------------------------------- refusals

def test_hash_mismatch_is_refused(natural_ckpt):
    with pytest.raises(BenchError, match="--sha256 expects"):
        load_user_model(ModelSpec(PLAIN, weights=natural_ckpt), "fashion-mnist", "linf", "0" * 64)


def test_pickle_that_needs_code_is_refused_unless_trusted(tmp_path, reference):
    pickled = tmp_path / "whole-module.pt"
    torch.save(reference, pickled)
    with pytest.raises(BenchError, match="--trust-checkpoint"):
        load_user_model(ModelSpec(str(pickled)), "fashion-mnist", "linf")
    with pytest.raises(BenchError, match="--trust-checkpoint"):  # as --weights too
        load_user_model(ModelSpec(PLAIN, weights=pickled), "fashion-mnist", "linf")
    trusted = load_user_model(ModelSpec(str(pickled), trust=True), "fashion-mnist", "linf")
    assert trusted.kind is SourceKind.PICKLE


def test_bad_input_declarations_are_refused(capsys, natural_ckpt):
    with pytest.raises(BenchError, match="both --mean and --std"):
        Preprocessing(mean=(0.5,))
    with pytest.raises(BenchError, match="--mean has 3 values but --std has 1"):
        Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.25,))
    with pytest.raises(BenchError, match="must be positive"):
        Preprocessing(mean=(0.5,), std=(0.0,))
    assert main(["run", "--model", PLAIN, "--weights", str(natural_ckpt), "--mean", "0.5;0.4", "--std", "1",
                 "--attack", "fgsm", "--n", "5"]) == 2
    assert "comma-separated numbers" in capsys.readouterr().err


def test_missing_factory_module_or_non_callable_is_refused_with_suggestions():
    with pytest.raises(BenchError, match="Did you mean: rounded_smallcnn"):
        load_user_model(ModelSpec("examples.toy_models:rounded_smalcnn"), "fashion-mnist", "linf")
    with pytest.raises(BenchError, match="cannot import 'examples.no_such_module'"):
        load_user_model(ModelSpec("examples.no_such_module:net"), "fashion-mnist", "linf")
    with pytest.raises(BenchError, match="not callable"):
        load_user_model(ModelSpec("tests.user_models:NOT_A_FACTORY"), "fashion-mnist", "linf")
    with pytest.raises(BenchError, match="does not exist"):
        ModelSpec("no/such/file.pt").kind()


def test_weights_that_do_not_fit_the_factory_are_refused(tmp_path):
    weights = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(3, 3)}, weights)
    with pytest.raises(BenchError, match="does not fit"):
        load_user_model(ModelSpec(PLAIN, weights=weights), "fashion-mnist", "linf")


def test_wrong_input_shape_is_refused_before_any_attack(points):
    loaded = load_user_model(ModelSpec("tests.user_models:cifar_shaped_mlp"), "fashion-mnist", "linf")
    with pytest.raises(ModelGuardError, match=r"fails on inputs of shape \(1, 28, 28\)"):
        preflight(ModelUnderTest(loaded.module, 10), points[0][:8])


def test_cli_refusals_exit_2_with_the_reason(capsys, natural_ckpt):
    assert main(["run", "--model", "tests.user_models:cifar_shaped_mlp", "--attack", "fgsm", "--n", "5",
                 "--results-dir", "/nonexistent/never-written"]) == 2
    assert "fails on inputs of shape" in capsys.readouterr().err
    assert main(["run", "--defense", "pgd-at", "--weights", str(natural_ckpt), "--n", "5"]) == 2
    assert "only apply to --model" in capsys.readouterr().err


# ----------------------------------------------------------------------------- end to end

def test_bench_run_and_inspect_a_user_model(tmp_path, capsys, natural_ckpt):
    runs = tmp_path / "runs"
    assert main(["run", "--model", PLAIN, "--weights", str(natural_ckpt), "--attack", "fgsm", "--n", "20",
                 "--results-dir", str(runs), "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    record = read_json(summary["record"])
    assert record["model"]["source"] == "factory" and record["model"]["label"] == "plain_smallcnn"
    assert record["model"]["sha256"] == factory_identity(PLAIN, sha256_file(natural_ckpt))
    assert main(["inspect", PLAIN, "--weights", str(natural_ckpt)]) == 0
    out = capsys.readouterr().out
    assert "312,202" in out and "passed" in out and record["model"]["sha256"] in out


def test_a_user_model_is_named_by_its_label_in_the_header_the_record_and_the_file(tmp_path, capsys, natural_ckpt):
    """Issue 32: a user model's header said `None`; `--label` names it everywhere (records, file
    names, the board), and without it the header names the loader's label, never None."""
    runs = tmp_path / "runs"
    assert main(["run", "--model", PLAIN, "--weights", str(natural_ckpt), "--attack", "fgsm", "--n", "8",
                 "--results-dir", str(runs), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("plain_smallcnn (")
    assert main(["run", "--model", PLAIN, "--weights", str(natural_ckpt), "--attack", "fgsm", "--n", "8",
                 "--label", "my-cnn.v1", "--results-dir", str(runs), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("my-cnn.v1 (")
    (mine,) = [p for p in runs.glob("*.json") if "my-cnn.v1" in p.name]
    assert read_json(mine)["model"]["label"] == "my-cnn.v1"
    result = bench.evaluate(PLAIN, weights=natural_ckpt, attacks="fgsm", n=8, label="api-cnn")
    assert result.model == result.record.model.label == "api-cnn"
    with pytest.raises(BenchError, match="use letters, digits"):
        bench.evaluate(PLAIN, weights=natural_ckpt, attacks="fgsm", n=8, label="../x")


def test_a_registered_defense_trains_your_own_architecture(tmp_path, capsys):
    """`bench train --defense pgd-at --arch package.module:factory`: trained by our trainer, the sidecar
    names the factory and the weights' sha256, and the checkpoint is evaluated as a --model (a file
    never names code to import, so `--checkpoint` refuses and says how)."""
    arch, out = "tests.user_models:small_mlp", tmp_path / "mine.pt"
    assert main(["train", "--defense", "pgd-at", "--arch", arch, "--epochs", "1", "--attack-steps", "2",
                 "--max-train-points", "256", "--out", str(out), "--quiet"]) == 0
    sidecar = read_json(out.with_suffix(".json"))
    assert sidecar["arch"] == arch and sidecar["arch_factory"]["spec"] == arch
    assert sidecar["sha256"] == checkpoints.sha256_file(out) and sidecar["recipe"]["arch"] == arch
    capsys.readouterr()
    assert main(["run", "--model", arch, "--weights", str(out), "--label", "my-mlp", "--attack", "fgsm", "--n", "20",
                 "--results-dir", str(tmp_path / "runs"), "--quiet"]) == 0
    assert "my-mlp" in capsys.readouterr().out
    assert main(["run", "--checkpoint", str(out), "--attack", "fgsm", "--n", "5",
                 "--results-dir", str(tmp_path / "runs")]) == 2
    assert f"evaluate it with --model {arch} --weights {out}" in capsys.readouterr().err
    assert main(["train", "--defense", "ancra", "--arch", arch, "--out", str(tmp_path / "a.pt")]) == 2
    err = capsys.readouterr().err
    assert "ancra needs a reverse-attention architecture" in err and "pgd-at" in err and not (tmp_path / "a.pt").exists()
