"""`bench train` on the command line: the listing, parameter overrides and their errors."""

import pytest

from bench.cli import main
from defenses import DEFENSES


def test_list_shows_every_defense_with_variant_params_and_recipes(capsys):
    assert main(["train", "--list"]) == 0
    out = capsys.readouterr().out
    for name, defense in DEFENSES.items():
        assert f"{name}  [{defense.paper}]" in out
    assert out.count("variant:") == len(DEFENSES.names())
    assert "params: aux_weight=2.0, beta=6.0, zeta=3.0, alpha=1.0" in out
    assert "fashion-mnist: smallcnn-ra, 3 epochs on 12000 points" in out
    assert "cifar10: wrn-34-10-cos, 100 epochs" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["--defense", "ancra", "--param", "zeat=1"], "Did you mean: zeta"),
    (["--defense", "ancra", "--param", "zeta"], "write KEY=VALUE"),
    (["--defense", "ancra", "--param", "zeta=abc"], "not a valid float"),
    (["--defense", "pgd-at", "--param", "beta=1"], "no hyper-parameters"),
    (["--defense", "ancra", "--arch", "resnet-18"], "Did you mean: resnet18"),
    (["--defense", "afd", "--init", "/nonexistent.pt"], "does not exist"),
    (["--defense", "trades", "--eps", "3"], "eps must lie in [0, 1]"),
])
def test_bad_train_arguments_are_clear_errors(argv, message, tmp_path, capsys):
    assert main(["train", *argv, "--out", str(tmp_path / "x.pt"), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_param_overrides_reach_the_sidecar(tmp_path, capsys):
    out = tmp_path / "m.pt"
    argv = ["train", "--defense", "trades", "--param", "beta=4", "--epochs", "1", "--batch-size", "32",
            "--attack-steps", "1", "--max-train-points", "64", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    from defenses.training import checkpoints

    meta = checkpoints.read_sidecar(out)
    assert meta["hyperparameters"] == {"beta": 4.0} and meta["recipe"]["params"] == {"beta": 4.0}
