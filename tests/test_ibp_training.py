"""IBP certified training: its schedule, its loss, and that what it trains is what `bench certify` proves."""

import pytest
import torch

from bench import data
from bench.verifier.intervals import ibp_margins, input_box, margin_spec
from bench.verifier.network import Chain
from bench.verifier.runner import Method, certify_points
from defenses.ibp import IBP, IbpParams, worst_case_logits
from defenses.nets.archs import build_arch
from defenses.training import trainer
from defenses.training.method import TrainContext
from defenses.training.registry import DEFENSES


def _method(params: IbpParams, steps_per_epoch: int = 10) -> IBP:
    spec = data.DATASETS.get("fashion-mnist")
    recipe = DEFENSES.get("ibp").recipes["fashion-mnist"]
    torch.manual_seed(0)
    return IBP(build_arch("dm-small", spec), recipe, params, TrainContext(spec, steps_per_epoch=steps_per_epoch))


def test_the_ramp_is_clean_during_the_warm_up_then_linear_per_step_then_full():
    method = _method(IbpParams(warmup_epochs=1, ramp_epochs=2), steps_per_epoch=10)
    seen = []
    for _ in range(45):
        seen.append(method.ramp())
        method.after_step()
    assert seen[:11] == [0.0] * 11 and seen[15] == pytest.approx(0.25) and seen[20] == pytest.approx(0.5)
    assert seen[30:] == [1.0] * 15
    assert not method.selectable(1) and method.selectable(2)


def test_the_robust_loss_is_cross_entropy_on_the_worst_logits_the_bounds_allow(fmnist_test):
    method = _method(IbpParams(warmup_epochs=0, ramp_epochs=0, final_kappa=0.0))
    x, y = fmnist_test.batch(slice(0, 16))
    lower = ibp_margins(Chain.of(method.model, (1, 28, 28), dtype=None), input_box(x, 0.1), margin_spec(y, 10, x.dtype))
    want = torch.nn.functional.cross_entropy(worst_case_logits(lower), torch.zeros_like(y))
    assert float(method.loss(x, y, torch.Generator(), 0)) == pytest.approx(float(want), rel=1e-6)
    # the worst-case logits are never better for the label than the real ones anywhere in the ball
    logits = method.model(x)
    real = logits.gather(1, y[:, None]) - logits
    others = real[torch.arange(10)[None, :] != y[:, None]].reshape(16, 9)
    assert (lower <= others + 1e-5).all()


def test_a_few_ibp_epochs_certify_held_out_points_and_select_by_certified_accuracy(tmp_path):
    job = trainer.resolve_job("ibp", "fashion-mnist", {"epochs": 2, "params": {"warmup_epochs": 0, "ramp_epochs": 1}},
                              tmp_path / "ibp.pt", quiet=True, max_train_points=2000, val_points=200)
    meta = trainer.train(job)
    assert meta["selection"]["metric"] == "held-out certified accuracy"
    last = meta["history"][-1]
    assert last["val_certified"] > 0.05 and last["val_certified"] <= last["val_robust"] <= last["val_clean"]


def test_the_committed_ibp_checkpoint_certifies_what_its_sidecar_says_on_held_out_points():
    """The selection's held-out certified accuracy, recomputed by `bench certify`'s own IBP."""
    from defenses.training import checkpoints

    path = checkpoints.default_path("fashion-mnist", "ibp", "dm-small")
    model, meta = checkpoints.load(path)
    full = data.load("fashion-mnist", data.Split.TRAIN)
    _, held_out = data.holdout_split(len(full), meta["recipe"]["holdout_fraction"])
    x, y = full.subset(held_out).batch(slice(0, meta["selection"]["held_out_points"]))
    cert = certify_points(model, x, y, 0.1, Method.IBP)
    best = next(h for h in meta["history"] if h["epoch"] == meta["selection"]["epoch"])
    assert float(cert.certified.mean()) == pytest.approx(best["val_certified"], abs=1e-9)
