"""The Python API: docs/api.md's examples run as written; tensors, modules and bad input."""

import re
from pathlib import Path

import pytest
import torch

import bench
from bench.errors import BenchError

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def _blocks(*kinds: str) -> list[str]:
    return [code for kind, code in re.findall(r"```(python(?: slow)?)\n(.*?)```", DOC.read_text(), re.S)
            if kind in kinds]


def test_the_api_docs_examples_run(monkeypatch):
    monkeypatch.chdir(DOC.parent.parent)
    blocks = _blocks("python")
    assert len(blocks) >= 5
    namespace: dict = {}
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102 (our own docs)


@pytest.mark.slow
def test_the_api_docs_audit_example_runs(monkeypatch):
    monkeypatch.chdir(DOC.parent.parent)
    namespace: dict = {}
    for code in _blocks("python", "python slow"):
        exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102 (our own docs)


@pytest.fixture(scope="module")
def module():
    return bench.load("pgd-at").module


def test_tensors_give_the_same_outcomes_as_the_test_split(module, points, tmp_path):
    x, y = points[0][:12], points[1][:12]
    from_split = bench.evaluate(module, attacks="fgsm", n=12, results_dir=tmp_path / "runs")
    from_tensors = bench.evaluate(module, dataset=(x, y), attacks="fgsm", eps=0.1)
    assert from_tensors.dataset == "tensors" and from_split.dataset == "fashion-mnist"
    assert from_tensors.per_example.equals(from_split.per_example)
    assert from_split.record_path is None and not any(tmp_path.iterdir())  # nothing written without save


def test_a_module_keeps_its_mode_and_is_pinned_by_its_weights(module, points):
    from bench.loading.sources import state_dict_sha256

    module.train()
    try:
        out = bench.attack(module, points[0][:8], points[1][:8], "fgsm", eps=0.1)
        assert module.training  # the API put it back as it was
    finally:
        module.eval()
    assert out.x_adv.shape == points[0][:8].shape and out.success.dtype == torch.bool
    assert bool(out.success.any()) and not bool(out.success[~out.clean_correct].any())
    changed = bench.load("pgd-at").module
    with torch.no_grad():
        next(changed.parameters()).view(-1)[0] += 1e-3
    assert state_dict_sha256(changed) != state_dict_sha256(module) == state_dict_sha256(bench.load("pgd-at").module)


@pytest.mark.parametrize(("call", "message"), [
    (lambda m, x, y: bench.evaluate(m, dataset=(x, y), attacks="fgsm"), "give eps"),
    (lambda m, x, y: bench.evaluate(m, dataset=(x, y), attacks="fgsm", eps=0.1, save=True), "save=True"),
    (lambda m, x, y: bench.evaluate("pgd-at", dataset=(x, y), attacks="fgsm", eps=0.1), "bench.load"),
    (lambda m, x, y: bench.evaluate(m, dataset=(x[0], y), attacks="fgsm", eps=0.1), "x must be float images"),
    (lambda m, x, y: bench.evaluate(m, dataset=(x, y.float()), attacks="fgsm", eps=0.1), "y must be integer"),
    (lambda m, x, y: bench.evaluate(m, dataset=(x, y), attacks="fgsmm", eps=0.1), "fgsm"),
    (lambda m, x, y: bench.evaluate(m, dataset=(x * 255, y), attacks="fgsm", eps=0.1), "[0, 1]"),
    (lambda m, x, y: bench.evaluate("ancraa", attacks="fgsm", n=2), "ancra"),
    (lambda m, x, y: bench.evaluate("pgd-at", attacks="fgsm", n=2, weights="w.pt"), "only apply to a user model"),
    (lambda m, x, y: bench.evaluate("pgd-at", attacks="fgsm", n=2, dataset="fashion"), "fashion-mnist"),
    (lambda m, x, y: bench.evaluate("pgd-at", attacks="fgsm", n=2, precision="fp8"), "precision 'fp8'"),
    (lambda m, x, y: bench.evaluate("pgd-at", attacks="fgsm", n=2, resume=True), "give save=True"),
    (lambda m, x, y: bench.eps_sweep("pgd-at", [], attacks="fgsm", n=2), "at least one"),
    (lambda m, x, y: bench.eps_sweep("pgd-at", [0.1], dataset=(x, y), attacks="fgsm"), "bench.load"),
    (lambda m, x, y: bench.audit(m), "spec"),
    # bench audit's attack lists, checked before any attack runs (nothing is written)
    (lambda m, x, y: bench.audit("pgd-at", standard="fgsmm", results_dir="/nonexistent/runs"), "fgsm"),
    (lambda m, x, y: bench.audit("pgd-at", adaptive="square-lng", results_dir="/nonexistent/runs"), "square-long"),
    (lambda m, x, y: bench.audit("pgd-at", strength="pgd:stepz=5", results_dir="/nonexistent/runs"), "steps"),
    (lambda m, x, y: bench.leaderboard("no/such/folder"), "no results folder"),
])
def test_bad_input_is_one_line(module, points, call, message):
    with pytest.raises(BenchError) as error:
        call(module, points[0][:4], points[1][:4])
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("call, message", [
    (lambda d: bench.check([torch.nn.Linear(2, 2)], baselines=d), "give models as specs"),
    (lambda d: bench.check(["examples.toy_models:plain_smallcnn", "examples.toy_models:rounded_smallcnn"],
                           baselines=d), "one user model per gate call"),
    (lambda d: bench.check(["pgd-at"], weights="w.pt", baselines=d), "only apply to a user model spec"),
    (lambda d: bench.check(["pgdat"], baselines=d), "pgd-at"),
    (lambda d: bench.check(["pgd-at"], baselines=d / "none"), "no baselines folder"),
    (lambda d: bench.check(["pgd-at"], attacks="pgdd", baselines=d), "Did you mean: pgd"),
    (lambda d: bench.check(["pgd-at"], label="mine", baselines=d), "give --model too"),
    (lambda d: bench.update_baselines(["pgd-at"], reason=" ", baselines=d), "needs --reason"),
])
def test_gate_calls_refuse_bad_input_before_evaluating_anything(call, message, tmp_path):
    with pytest.raises(BenchError, match=re.escape(message)):
        call(tmp_path)
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("call, message", [
    (lambda d: bench.sweep([torch.nn.Linear(2, 2)], results_dir=d), "give models as specs"),
    (lambda d: bench.sweep(["examples.toy_models:plain_smallcnn", "examples.toy_models:rounded_smallcnn"],
                           results_dir=d), "one user model per sweep call"),
    (lambda d: bench.sweep(["pgdat"], results_dir=d), "pgd-at"),
    (lambda d: bench.sweep(["pgd-at"], attacks="fgsm,pgdd", results_dir=d), "Did you mean: pgd"),
    (lambda d: bench.sweep(["pgd-at"], eps=0.1, eps_sweep=[0.1, 0.2], results_dir=d), "not both"),
    (lambda d: bench.sweep(["pgd-at"], eps_sweep=[], results_dir=d), "names no ε"),
    (lambda d: bench.sweep(["pgd-at"], dataset="fashion", results_dir=d), "fashion-mnist"),
    (lambda d: bench.sweep(["pgd-at"], attacks="fgsm", n=2, results_dir=_a_file(d) / "runs"), "is a file"),
])
def test_sweep_refuses_bad_input_before_evaluating_anything(call, message, tmp_path):
    with pytest.raises(BenchError, match=re.escape(message)):
        call(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] in ([], ["file"])  # nothing written


def _a_file(folder: Path) -> Path:
    (folder / "file").write_text("not a folder")
    return folder / "file"


def test_the_cli_gate_is_the_api_gate(tmp_path, capsys):
    """`bench check` prints what bench.check returns, for the same baselines and protocol."""
    from bench.cli import main

    options = dict(baselines=tmp_path, n=12, attacks="fgsm")
    bench.update_baselines(["standard"], reason="test", **options)
    report = bench.check(["standard"], **options)
    code = main(["check", "--defense", "standard", "--baselines", str(tmp_path), "--n", "12", "--attack", "fgsm",
                 "--quiet"])
    assert code == 0 and report.passed
    assert capsys.readouterr().out.strip() == str(report).strip()


def test_no_submodule_shadows_an_api_name():
    """`bench.sweep` is the call, also after every module of the package is imported (a module
    named like a call would replace it as an attribute of the package)."""
    import importlib
    import pkgutil

    from bench import api

    for info in pkgutil.walk_packages(bench.__path__, "bench."):
        if info.name != "bench.__main__":  # runs the CLI
            importlib.import_module(info.name)
    assert all(getattr(bench, name) is getattr(api, name) for name in bench.API)


def test_train_takes_what_bench_train_takes_and_refuses_bad_input_first(tmp_path):
    from bench.api import RECIPE_OVERRIDES
    from bench.cli.train import RECIPE_FLAGS

    assert tuple(flag.replace("-", "_") for flag, _ in RECIPE_FLAGS) == RECIPE_OVERRIDES
    for call, message in [
        (lambda: bench.train("pgd-at", epochz=2, out=tmp_path / "a.pt"), "Did you mean: epochs"),
        (lambda: bench.train("pgd-att", out=tmp_path / "a.pt"), "Did you mean: pgd-at"),
        (lambda: bench.train("pgd-at", epochs=0, out=tmp_path / "a.pt"), "at least 1"),
        (lambda: bench.train("pgd-at", params={"beta": 1}, out=tmp_path / "a.pt"), "no hyper-parameters"),
        (lambda: bench.train("pgd-at", device="tpu", out=tmp_path / "a.pt"), "tpu"),
    ]:
        with pytest.raises(BenchError, match=re.escape(message)):
            call()
    (tmp_path / "a.pt").write_bytes(b"kept")
    with pytest.raises(BenchError, match="exists"):
        bench.train("pgd-at", out=tmp_path / "a.pt")
    assert (tmp_path / "a.pt").read_bytes() == b"kept" and sorted(p.name for p in tmp_path.iterdir()) == ["a.pt"]


def test_every_bench_run_option_is_an_api_keyword():
    """Nothing `bench run` can do is out of the API's reach: each of its flags maps to a keyword
    of bench.evaluate or bench.eps_sweep (the model-choosing flags are the `model` argument)."""
    import argparse
    import inspect

    from bench.cli import run

    parser = argparse.ArgumentParser()
    run.add(parser.add_subparsers())
    flags = {a.dest for a in parser._subparsers._group_actions[0].choices["run"]._actions} - {"help"}
    through_model = {"defense", "checkpoint", "model"}
    renamed = {"attack": "attacks", "save_adv": "save_adversarials", "individual": None, "json": None,
               "eps_sweep": None}
    keywords = {*inspect.signature(bench.evaluate).parameters, *inspect.signature(bench.eps_sweep).parameters,
                *inspect.signature(bench.load).parameters}  # bench.load's keywords pass through **model_options
    assert {"precision", "resume", "save_adv", "n"} <= flags  # the parser was read
    missing = {f for f in flags - through_model if renamed.get(f, f) is not None and renamed.get(f, f) not in keywords}
    assert not missing


def test_precision_adversarials_and_resume_reach_the_harness(tmp_path):
    runs = tmp_path / "runs"
    first = bench.evaluate("pgd-at", attacks="fgsm", n=6, save=True, results_dir=runs,
                           precision="bf16", save_adversarials=True)
    assert first.record.provenance.precision == "bf16" and first.record.resumed is False
    assert first.adversarials is not None and first.adversarials.x_adv.shape[0] == 6
    with pytest.raises(BenchError, match="no interrupted run"):  # resume reaches the harness, as --resume does
        bench.evaluate("pgd-at", attacks="fgsm", n=6, save=True, results_dir=runs, resume=True)
