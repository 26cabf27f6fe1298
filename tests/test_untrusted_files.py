"""No file a user hands us runs code unless they pass --trust-checkpoint: every loader, every format.

Each payload creates a marker file when it runs. The first tests prove the payloads are live (the
unsafe way of loading them runs them); the rest send them through every loading path of the CLI
and check that the marker never appears, that the exit status is 2 and that the one-line refusal
says which flag would load the file and why that is dangerous.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.errors import BenchError
from bench.files import sha256_file
from bench.loading.untrusted import no_network
from bench.records.adversarials import AdversarialStore
from bench.threat import Norm, ThreatModel
from defenses.training import checkpoints
from tests import malicious
from tests.conftest import write_zoo_model

FACTORY = "examples.toy_models:plain_smallcnn"


def cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    return code, err


def refused(code: int, err: str, marker: Path, *, trust_flag: bool = True) -> None:
    assert code == 2, err
    assert not marker.exists(), "the payload ran"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    if trust_flag:
        assert "--trust-checkpoint" in err and "run code" in err, err


@pytest.fixture()
def marker(tmp_path: Path) -> Path:
    return tmp_path / "PAYLOAD-RAN"


@pytest.fixture(scope="module")
def real_state(natural_ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(natural_ckpt, weights_only=True)


@pytest.fixture(scope="module")
def clean_export(tmp_path_factory, natural_ckpt: Path) -> Path:
    module, _ = checkpoints.load(natural_ckpt)
    return malicious.export_model(module, tmp_path_factory.mktemp("export") / "clean.pt2", torch.rand(2, 1, 28, 28))


@pytest.fixture(scope="module")
def clean_script(tmp_path_factory, natural_ckpt: Path) -> Path:
    module, _ = checkpoints.load(natural_ckpt)
    path = tmp_path_factory.mktemp("script") / "clean.ts"
    torch.jit.save(torch.jit.trace(module.eval(), torch.rand(2, 1, 28, 28)), str(path))
    return path


# --- the payloads are live --------------------------------------------------------------------

def test_pickle_payloads_run_when_unpickled_the_unsafe_way(tmp_path, marker, real_state):
    for name, obj in malicious.wrappings(marker, real_state).items():
        path = tmp_path / f"{name}.pt"
        torch.save(obj, path)
        torch.load(path, weights_only=False)
        assert marker.exists(), name
        marker.unlink()


@pytest.mark.parametrize("edit", ["pickled-weight", "sample-inputs", "pickled-constant", "opaque-constant",
                                  "shape-expression", "guards-code"])
def test_export_payloads_run_in_torch_export_load(tmp_path, marker, clean_export, edit):
    path = malicious.rewrite_zip(clean_export, tmp_path / f"{edit}.pt2", malicious.export_edits(marker)[edit])
    with contextlib.suppress(Exception):  # most fail after the payload ran; guards-code runs and works
        torch.export.load(str(path)).module()(torch.rand(1, 1, 28, 28))
    assert marker.exists()


# --- every loading path refuses them ----------------------------------------------------------

@pytest.mark.parametrize("command", ["run", "inspect", "audit"])
@pytest.mark.parametrize("wrapping", ["bare", "under-state-dict", "mixed"])
def test_model_file_pickles_are_refused_by_run_inspect_and_audit(tmp_path, marker, real_state, capsys, wrapping,
                                                                 command):
    path = tmp_path / "evil.pt"
    torch.save(malicious.wrappings(marker, real_state)[wrapping], path)
    argv = {"run": ["run", "--model", str(path), "--attack", "fgsm", "--n", "5", "--results-dir", str(tmp_path / "r")],
            "inspect": ["inspect", str(path)],
            "audit": ["audit", "--model", str(path), "--n", "5", "--results-dir", str(tmp_path / "r")]}[command]
    refused(*cli(argv, capsys), marker)


def test_a_raw_pickle_is_refused_and_runs_only_with_trust(tmp_path, marker, capsys):
    path = malicious.write_raw_pickle(tmp_path / "evil.pkl", marker)
    refused(*cli(["inspect", str(path)], capsys), marker)
    code, err = cli(["inspect", str(path), "--trust-checkpoint"], capsys)
    assert marker.exists() and code == 2 and len(err.splitlines()) == 1  # trusted: it ran, as the user allowed


@pytest.mark.parametrize("wrapping", ["bare", "under-state-dict", "mixed"])
def test_weights_for_a_factory_are_refused(tmp_path, marker, real_state, capsys, wrapping):
    path = tmp_path / "evil.pt"
    torch.save(malicious.wrappings(marker, real_state)[wrapping], path)
    refused(*cli(["inspect", FACTORY, "--weights", str(path)], capsys), marker)


@pytest.mark.parametrize("edit", ["pickled-weight", "sample-inputs", "pickled-constant", "opaque-constant",
                                  "shape-expression", "call-target", "guards-code", "clean"])
def test_export_archives_need_trust_on_every_route(tmp_path, marker, clean_export, capsys, edit):
    path = clean_export if edit == "clean" else malicious.rewrite_zip(
        clean_export, tmp_path / f"{edit}.pt2", malicious.export_edits(marker)[edit])
    for argv in (["inspect", str(path)],
                 ["run", "--model", str(path), "--attack", "fgsm", "--n", "5", "--results-dir", str(tmp_path)],
                 ["audit", "--model", str(path), "--n", "5", "--results-dir", str(tmp_path / "r")],
                 ["check", "--model", str(path), "--baselines", str(tmp_path / "b")]):
        refused(*cli(argv, capsys), marker)


def test_a_clean_export_archive_loads_with_trust(clean_export, capsys):
    code, err = cli(["inspect", str(clean_export), "--trust-checkpoint"], capsys)
    assert code == 0, err


@pytest.mark.parametrize("edit", ["extra-file", "data-pickle"])
def test_torchscript_archives_need_trust(tmp_path, marker, clean_script, capsys, edit):
    path = malicious.rewrite_zip(clean_script, tmp_path / f"{edit}.ts", malicious.torchscript_edits(marker)[edit])
    refused(*cli(["inspect", str(path)], capsys), marker)
    cli(["inspect", str(path), "--trust-checkpoint"], capsys)  # TorchScript's own unpickler: no Python payload
    assert not marker.exists()


def test_clean_torchscript_loads_with_trust(clean_script, capsys):
    code, err = cli(["inspect", str(clean_script)], capsys)
    assert code == 2 and "TorchScript archive is a program" in err
    code, err = cli(["inspect", str(clean_script), "--trust-checkpoint"], capsys)
    assert code == 0, err


def _with_sidecar(path: Path, natural_ckpt: Path) -> Path:
    meta = json.loads(checkpoints.sidecar_path(natural_ckpt).read_text())
    meta["sha256"] = sha256_file(path)
    checkpoints.sidecar_path(path).write_text(json.dumps(meta))
    return path


@pytest.mark.parametrize("wrapping", ["bare", "under-state-dict", "mixed"])
def test_checkpoints_surrogates_and_init_files_are_refused(tmp_path, marker, real_state, natural_ckpt, capsys,
                                                           wrapping):
    path = tmp_path / "evil.pt"
    torch.save(malicious.wrappings(marker, real_state)[wrapping], path)
    _with_sidecar(path, natural_ckpt)
    runs = str(tmp_path / "runs")
    for argv in (["run", "--checkpoint", str(path), "--attack", "fgsm", "--n", "5", "--results-dir", runs],
                 ["run", "--defense", "standard", "--attack", f"transfer:{path}", "--n", "5", "--results-dir", runs],
                 ["train", "--defense", "afd", "--init", str(path), "--out", str(tmp_path / "afd.pt"), "--epochs", "1",
                  "--max-train-points", "64", "--quiet"]):
        code, err = cli(argv, capsys)
        refused(code, err, marker, trust_flag=False)
        assert "No flag loads it" in err


def test_a_training_state_is_refused(tmp_path, marker, capsys):
    out = tmp_path / "t.pt"
    torch.save({"key": {}, "evil": malicious.Payload(marker)}, out.with_suffix(".train-state.pt"))
    code, err = cli(["train", "--defense", "pgd-at", "--out", str(out), "--epochs", "1", "--max-train-points", "64",
                     "--resume", "--quiet"], capsys)
    refused(code, err, marker, trust_flag=False)


def test_saved_adversarial_examples_are_refused(tmp_path, marker):
    path = tmp_path / "state.adv.pt"
    torch.save({"x_adv": malicious.Payload(marker), "broken": torch.zeros(3)}, path)
    with pytest.raises(BenchError, match="No flag loads it"):
        AdversarialStore(path, torch.zeros(3, 1, 28, 28), torch.arange(3).numpy(), dataset="fashion-mnist",
                         threat=ThreatModel(Norm.LINF, 0.1), model_sha256="0" * 64)
    assert not marker.exists()


def test_adversarial_examples_handed_to_verify_adv_are_refused(tmp_path, marker, capsys):
    path = tmp_path / "external.adv.pt"
    torch.save({"format": "bench-adv", "version": 1, "x_adv": malicious.Payload(marker)}, path)
    argv = ["verify-adv", "--defense", "standard", "--adv", str(path), "--results-dir", str(tmp_path / "runs")]
    refused(*cli(argv, capsys), marker, trust_flag=False)


def test_robustbench_files_are_checked_before_robustbench_reads_them(tmp_path, marker, capsys):
    _, path = write_zoo_model(tmp_path)
    torch.save({"state_dict": malicious.Payload(marker)}, path)
    argv = ["inspect", "robustbench:Wong2020Fast", "--dataset", "cifar10", "--model-dir", str(tmp_path)]
    refused(*cli(argv, capsys), marker)


def test_every_ensemble_member_is_checked_and_missing_ones_are_never_downloaded(tmp_path, marker, capsys):
    from bench.loading import zoo

    members = zoo.zoo_files("Chen2020Adversarial", "cifar10", "linf", tmp_path)
    assert len(members) == 3 and members[0].name == "Chen2020Adversarial.pt_m0.pt"
    argv = ["inspect", "robustbench:Chen2020Adversarial", "--dataset", "cifar10", "--model-dir", str(tmp_path)]
    code, err = cli(argv, capsys)
    assert code == 2 and "does not download" in err and all(str(m) in err for m in members)
    members[0].parent.mkdir(parents=True)
    torch.save({"w": torch.zeros(1)}, members[0])
    torch.save({"state_dict": malicious.Payload(marker)}, members[1])
    torch.save({"w": torch.zeros(1)}, members[2])
    refused(*cli(argv, capsys), marker)


def test_no_network_turns_a_connection_attempt_into_a_clear_error():
    with no_network("a zoo loader"), pytest.raises(BenchError, match="never downloads"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)


def test_a_copied_checkpoint_loads_and_a_pinned_hash_is_enforced(tmp_path, natural_ckpt, capsys):
    """The refusals above are not blanket refusals: the real checkpoint loads through every path."""
    path = tmp_path / "copy.pt"
    shutil.copy(natural_ckpt, path)
    _with_sidecar(path, natural_ckpt)
    assert cli(["inspect", str(path)], capsys)[0] == 0
    assert cli(["inspect", FACTORY, "--weights", str(path)], capsys)[0] == 0
    code, err = cli(["inspect", FACTORY, "--weights", str(path), "--sha256", "0" * 64], capsys)
    assert code == 2 and "--sha256 expects" in err
