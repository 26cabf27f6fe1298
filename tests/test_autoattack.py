"""Our `aa` is the official AutoAttack: same per-example outcome as a direct pyautoattack call."""

import logging

import numpy as np
import torch
from pyautoattack import AutoAttack

from bench.cli import main
from bench.threat import Norm
from tests.conftest import read_json


def test_aa_through_the_harness_equals_a_direct_pyautoattack_call(natural_ckpt, natural_model, fmnist_test,
                                                                  tmp_path, capsys):
    # a small ε leaves points for every stage; n > batch size exercises AutoAttack's re-batching
    n, batch, eps, seed = 48, 20, 0.012, 0
    code = main(["run", "--checkpoint", str(natural_ckpt), "--attack", "aa", "--n", str(n), "--eps", str(eps),
                 "--batch-size", str(batch), "--seed", str(seed), "--results-dir", str(tmp_path), "--json",
                 "--quiet"])
    assert code == 0
    import json
    summary = json.loads(capsys.readouterr().out)
    record = read_json(summary["record"])
    ours = np.array([c == "1" for c in record["per_example"]["robust"]["aa"]])

    x, y = fmnist_test.batch(slice(0, n))
    with natural_model.attack_mode():
        aa = AutoAttack(natural_model, device="cpu", eps=eps, norm=Norm.LINF.autoattack_name, seed=seed,
                        version="standard")
        logging.getLogger("auto-attack").setLevel(logging.WARNING)
        x_adv, y_adv = aa.run_standard_evaluation(x, y, batch_size=batch)
    direct = (y_adv == y).numpy()
    assert np.array_equal(ours, direct)
    assert 0 < direct.sum() < record["clean"]["count"]  # the test is not vacuous
    used = {b.split("/")[1] for b in record["per_example"]["broken_first_by"] if b}
    assert "apgd-ce" in used


def test_single_official_attacks_use_the_standard_settings():
    from bench.attacks import build_attack

    stage = build_attack("apgd-ce").stages()[0]
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 10))
    aa = AutoAttack(model, device="cpu", eps=0.1, seed=0, version=stage.aa_version)
    assert (aa.apgd.n_iter, aa.apgd.n_restarts, aa.apgd_targeted.n_target_classes, aa.square.n_queries) == (
        100, 1, 9, 5000)
