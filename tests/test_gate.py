"""`bench check`: passes on the committed baselines, and each known way of faking robustness turns it red.

The mutation tests run the real gate (committed baseline, real protocol) on the PGD-AT checkpoint
with one piece of the attack code broken in memory.
"""

import json
import re
import shlex
import shutil

import pytest
import torch

from bench import gate
from bench.attacks import gradient
from bench.cli import main
from bench.evaluation.committed import committed_defenses
from bench.loading.sources import factory_identity
from defenses.training import checkpoints
from tests.conftest import COMMITTED, REPO

BASELINES = REPO / "results" / "baselines"


def _check(capsys, *args):
    code = main(["check", "--quiet", *args])
    return code, capsys.readouterr().out


def test_gate_passes_on_the_committed_baseline(capsys):
    code, out = _check(capsys, "--defense", "pgd-at")
    assert code == 0, out
    assert "PASS: 1 checkpoints, 0 red" in out


def _pgd_one_step(monkeypatch):
    real = gradient.ascend  # the loop every PGD-family attack runs
    monkeypatch.setattr(gradient, "ascend", lambda *a, **k: real(*a, **{**k, "steps": 1}))


def _no_random_start(monkeypatch):  # PGD's per-example random start (bench.attacks.noise)
    monkeypatch.setattr(gradient, "ball_start", lambda norm, x, eps, gens: torch.zeros_like(x))


def _apgd_ten_iterations(monkeypatch):
    import pyautoattack.autoattack as official

    class TenIterations(official.APGDAttack):  # the torchattacks AutoAttack bug: n_iter 10, not 100
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "n_iter": 10})

    monkeypatch.setattr(official, "APGDAttack", TenIterations)


@pytest.mark.parametrize("mutate, measure", [
    (_pgd_one_step, "pgd"),
    (_no_random_start, "pgd"),
    (_apgd_ten_iterations, "apgd-ce"),
])
def test_weakened_attacks_turn_the_gate_red(mutate, measure, monkeypatch, capsys):
    mutate(monkeypatch)
    code, out = _check(capsys, "--defense", "pgd-at")
    assert code == 1, out
    assert f"RED pgd-at {measure}:" in out and "FAIL" in out


def _swapped(tmp_path):
    """TRADES weights filed under pgd-at's name, next to pgd-at's committed baseline."""
    folder, baselines = tmp_path / "ckpt", tmp_path / "baselines" / "fashion-mnist"
    folder.mkdir()
    baselines.mkdir(parents=True)
    source = COMMITTED / "trades-smallcnn.pt"
    shutil.copy(source, folder / "pgd-at.pt")
    shutil.copy(checkpoints.sidecar_path(source), checkpoints.sidecar_path(folder / "pgd-at.pt"))
    shutil.copy(BASELINES / "fashion-mnist" / "pgd-at.json", baselines / "pgd-at.json")
    return folder / "pgd-at.pt", tmp_path / "baselines"


def test_swapped_checkpoint_turns_the_gate_red(tmp_path, capsys):
    ckpt, baselines = _swapped(tmp_path)
    code, out = _check(capsys, "--checkpoint", str(ckpt), "--baselines", str(baselines))
    assert code == 1 and "RED pgd-at: checkpoint changed: sha256" in out


def test_update_needs_a_reason_and_keeps_history(natural_ckpt, tmp_path, capsys):
    args = ["--checkpoint", str(natural_ckpt), "--baselines", str(tmp_path), "--n", "30", "--attack", "fgsm"]
    code = main(["check", "--quiet", *args, "--update-baseline"])
    assert code == 2 and "--reason" in capsys.readouterr().err
    assert main(["check", "--quiet", *args, "--update-baseline", "--reason", "first"]) == 0
    assert main(["check", "--quiet", *args, "--update-baseline", "--reason", "second"]) == 0
    baseline = json.loads((tmp_path / "fashion-mnist" / "standard-smallcnn.json").read_text())
    assert [h["reason"] for h in baseline["history"]] == ["first", "second"]
    assert baseline["checkpoint"]["sha256"] == checkpoints.read_sidecar(natural_ckpt)["sha256"]
    capsys.readouterr()
    code, out = _check(capsys, *args)
    assert code == 0 and "PASS" in out
    code, out = _check(capsys, *args[:-4])  # no options: the baseline's own protocol runs
    assert code == 0 and "first 30 test points, attacks fgsm" in out
    code, out = _check(capsys, *args[:-4], "--n", "40")
    assert code == 1 and "asks for first 40 test points" in out and "blessed under first 30" in out
    assert f"--baselines {tmp_path} --update-baseline" in out  # the re-bless of exactly this one
    assert main(["check", "--quiet", *args[:-4], "--n", "40", "--update-baseline", "--reason", "more points"]) == 0
    baseline = json.loads((tmp_path / "fashion-mnist" / "standard-smallcnn.json").read_text())
    assert baseline["protocol"] == {"n": 40, "attacks": "fgsm", "seed": 0, "batch_size": 500}


@pytest.mark.parametrize("content, message", [
    ("{not json", "corrupt baseline"),
    ('{"baseline_version": 1, "protocol": {}}', "incomplete baseline"),
    ('{"baseline_version": 7}', "not a baseline of version 1"),
])
def test_bad_baseline_is_a_clear_error_naming_the_file(content, message, tmp_path, capsys):
    (tmp_path / "fashion-mnist").mkdir()
    bad = tmp_path / "fashion-mnist" / "pgd-at.json"
    bad.write_text(content)
    assert main(["check", "--quiet", "--defense", "pgd-at", "--baselines", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and message in err


def test_baseline_of_a_missing_checkpoint_is_named_and_the_rest_still_reported(tmp_path, capsys):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    orphan = json.loads((BASELINES / "fashion-mnist" / "pgd-at.json").read_text())
    orphan["checkpoint"] = {"label": "retired", "path": str(tmp_path / "gone.pt"), "sha256": "0" * 64}
    (folder / "retired.json").write_text(json.dumps(orphan))
    code, out = _check(capsys, "--baselines", str(tmp_path))  # no other baselines here: nothing is evaluated
    assert code == 1
    assert f"RED {folder / 'retired.json'}: baseline for 'retired', but its checkpoint" in out
    assert "PASS" not in out and "FAIL: 0 checkpoints" in out and "pgd-at" not in out  # only what the folder holds


def test_the_projects_folder_must_hold_a_baseline_for_every_committed_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(gate, "COMMITTED_BASELINES", tmp_path)
    found, problems = gate.default_targets("fashion-mnist", tmp_path)
    assert {t.label for t in found} == set(committed_defenses("fashion-mnist")) and not problems
    result = gate.run_gate(found[:1], tmp_path, gate.ProtocolChoice(), problems)
    assert result.failed and "no baseline at" in result.verdicts[0].identity[0]
    ours, problems = gate.default_targets("fashion-mnist", BASELINES)
    assert [t for t in ours if t.defense] == found and not problems  # the committed folder: one each
    beyond = [t for t in ours if not t.defense]  # and the full-budget checkpoints it gates by path
    assert beyond and all(t.checkpoint is not None and t.checkpoint.parent.name == "fashion-mnist-full"
                          and t.checkpoint.is_file() for t in beyond)


def _readme_commands(path):
    """The `bench check` commands of a README's bash blocks, continuation lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", path.read_text(), re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [shlex.split(line.strip())[1:] for line in lines if line.strip().startswith("bench check")]


def test_the_ci_readmes_own_folder_form_end_to_end(tmp_path, monkeypatch, capsys):
    """examples/ci/README.md as written, in a project of one's own: bless (here at a cheaper protocol),
    then a bare `bench check --baselines ci/baselines` gates exactly that baseline under its protocol,
    and a re-bless naming nothing rewrites only it."""
    bless, check = _readme_commands(REPO / "examples" / "ci" / "README.md")[:2]
    assert "--update-baseline" in bless and check == ["check", "--baselines", "ci/baselines"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    shutil.copy(COMMITTED / "pgd-at-smallcnn.pt", tmp_path / "models" / "mine.pt")
    shutil.copy(checkpoints.sidecar_path(COMMITTED / "pgd-at-smallcnn.pt"), tmp_path / "models" / "mine.json")
    assert main([*bless, "--quiet", "--n", "40", "--attack", "fgsm,pgd"]) == 0
    written = sorted(p.relative_to(tmp_path) for p in (tmp_path / "ci").rglob("*.json"))
    assert [str(p) for p in written] == ["ci/baselines/fashion-mnist/mine.json"]
    capsys.readouterr()
    code, out = _check(capsys, *check[1:])
    assert code == 0 and "PASS: 1 checkpoints, 0 red" in out and "first 40 test points, attacks fgsm,pgd" in out
    assert main(["check", "--quiet", "--baselines", "ci/baselines", "--update-baseline", "--reason", "again"]) == 0
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "ci").rglob("*.json")) == written
    assert len(json.loads((tmp_path / written[0]).read_text())["history"]) == 2


def test_churn_limit_follows_the_stated_rule():
    assert gate.churn_limit(500) == 9  # 99.9% quantile of Binomial(500, 0.5%)
    m = gate.Measure("pgd", 500, to_robust=6, to_broken=0, baseline_count=300, count=306)
    assert m.problem() is None  # 6 one-way flips: p = 1/64, not below α = 0.001
    m = gate.Measure("pgd", 500, to_robust=10, to_broken=0, baseline_count=300, count=310)
    assert "flipped" in m.problem() or "drift" in m.problem()


def test_a_user_architecture_is_gated_end_to_end(tmp_path, capsys):
    """`--model package.module:factory --weights`: blessed once, then passes; other weights or another
    declared input or another factory under the same label turn it red; without --model it is named, not imported."""
    base = tmp_path / "ci-baselines"
    model = ["--model", "examples.toy_models:plain_smallcnn", "--label", "mine"]
    protocol = ["--baselines", str(base), "--n", "30", "--attack", "fgsm,pgd"]
    pgd_at, standard = str(COMMITTED / "pgd-at-smallcnn.pt"), str(COMMITTED / "standard-smallcnn.pt")
    assert main(["check", "--quiet", *model, "--weights", pgd_at, *protocol, "--update-baseline",
                 "--reason", "first"]) == 0
    baseline = json.loads((base / "fashion-mnist" / "mine.json").read_text())["checkpoint"]
    weights_sha = checkpoints.read_sidecar(COMMITTED / "pgd-at-smallcnn.pt")["sha256"]
    assert baseline["sha256"] == factory_identity("examples.toy_models:plain_smallcnn", weights_sha)
    assert baseline["model"]["spec"] == "examples.toy_models:plain_smallcnn" and "trust" not in baseline["model"]
    capsys.readouterr()
    code, out = _check(capsys, *model, "--weights", pgd_at, *protocol)
    assert code == 0 and "PASS: 1 checkpoints" in out
    code, out = _check(capsys, *model, "--weights", standard, *protocol)
    assert code == 1 and "RED mine: checkpoint changed: sha256" in out
    code, out = _check(capsys, *model, "--weights", pgd_at, "--mean", "0.5", "--std", "0.5", *protocol)
    assert code == 1 and "RED mine: declared input changed" in out
    code, out = _check(capsys, "--model", "examples.toy_models:rounded_smallcnn", "--label", "mine", "--weights",
                       pgd_at, *protocol)
    assert code == 1 and "blessed for --model 'examples.toy_models:plain_smallcnn'" in out
    found, problems = gate.default_targets("fashion-mnist", base)  # without --model: named, never imported
    assert "mine" not in [t.label for t in found] and "check it with `bench check --model" in problems[0]


@pytest.mark.parametrize("spec", ["evilmod:make", "os:abort", "sys:exit", "builtins:exec"])
def test_a_baseline_never_names_code_to_import(tmp_path, monkeypatch, spec):
    """A baseline is a file handed to us: `bench check` compares the model it names, never imports it."""
    marker = tmp_path / "imported"
    (tmp_path / "evilmod.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef make(): return None\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    folder = tmp_path / "b" / "fashion-mnist"
    folder.mkdir(parents=True)
    baseline = json.loads((BASELINES / "fashion-mnist" / "pgd-at.json").read_text())
    baseline["checkpoint"]["model"] = {"spec": spec, "weights": None, "mean": None, "std": None, "input_range": None}
    (folder / "theirs.json").write_text(json.dumps(baseline))
    found, problems = gate.default_targets("fashion-mnist", tmp_path / "b")  # what `bench check` gates
    assert not marker.exists() and "theirs" not in [t.label for t in found]
    assert len(problems) == 1 and "imports no code" in problems[0]
    assert gate.GateResult([], problems).failed  # named, not checked: red, never a silent pass
