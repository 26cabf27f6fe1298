"""Attacks against independent implementations, on real Fashion-MNIST points."""

import pytest
import torch

from bench.attacks import Attack, AttackOutput, build_attack
from bench.errors import VerificationError
from bench.norms import distance
from bench.threat import Norm, ThreatModel
from bench.verify import verify_successes

LINF = ThreatModel(Norm.LINF, 0.1)
L2 = ThreatModel(Norm.L2, 1.0)


def _correct(model, x, y):
    keep = model.predict(x) == y
    return x[keep], y[keep]


@pytest.mark.parametrize("name", ["fgsm", "pgd", "cw"])
@pytest.mark.parametrize("threat", [LINF, L2], ids=["linf", "l2"])
def test_gradient_attacks_stay_in_the_ball_and_the_box_and_break_a_natural_model(
        natural_model, points, name, threat):
    x, y = _correct(natural_model, *points)
    with natural_model.attack_mode():
        out = build_attack(name).run(natural_model, x, y, threat, seed=0)
        verify_successes(natural_model, x, out.x_adv, y, out.success, threat, name)
    assert float(distance(threat.norm, out.x_adv, x).max()) <= threat.eps + 1e-5
    assert float(out.x_adv.min()) >= 0.0 and float(out.x_adv.max()) <= 1.0
    assert bool(((natural_model.predict(out.x_adv) != y) == out.success).all())
    assert out.success.float().mean() > 0.5  # a naturally trained model is not robust at these ε


def test_fgsm_matches_torchattacks_exactly(natural_model, points):
    torchattacks = pytest.importorskip("torchattacks")
    x, y = _correct(natural_model, *points)
    with natural_model.attack_mode():
        ours = build_attack("fgsm").run(natural_model, x, y, LINF, seed=0).x_adv
        theirs = torchattacks.FGSM(natural_model, eps=LINF.eps)(x, y)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_pgd_is_at_least_as_strong_as_torchattacks(committed_robust, fmnist_test):
    """Same model, points, ε, steps, step size and random start: our PGD may not be weaker."""
    torchattacks = pytest.importorskip("torchattacks")
    model = committed_robust
    x, y = _correct(model, *fmnist_test.batch(slice(0, 500)))
    with model.attack_mode():
        ours = build_attack("pgd", {"steps": "10"}).run(model, x, y, LINF, seed=0).success
        torch.manual_seed(0)
        theirs_adv = torchattacks.PGD(model, eps=0.1, alpha=0.025, steps=10, random_start=True)(x, y)
    theirs = model.predict(theirs_adv) != y
    n = len(y)
    # both succeed on a comparable set; ours must not fall short by more than sampling noise
    assert ours.sum() >= theirs.sum() - 2 * (n ** 0.5) * 0.5 ** 0.5
    assert ours.float().mean() > 0.05  # the robust model is not immune at ε = 0.1


def test_pgd_restarts_and_margin_loss_never_weaken_the_attack(committed_robust, points):
    model = committed_robust
    x, y = _correct(model, *points)
    with model.attack_mode():
        one = build_attack("pgd", {"steps": "10"}).run(model, x, y, LINF, seed=3).success
        three = build_attack("pgd", {"steps": "10", "restarts": "3"}).run(model, x, y, LINF, seed=3).success
    assert int(one.sum()) > 0  # the single run broke points, so the next line has something to check
    assert bool(three[one].all())  # the first restart is the same draw, so restarts only add


def test_cw_l2_counts_only_successes_within_eps(natural_model, points):
    x, y = _correct(natural_model, *points)
    attack = build_attack("cw-l2", {"binary_steps": "5", "steps": "100", "initial_const": "1"})
    x, y = x[:20], y[:20]
    with natural_model.attack_mode():
        small = attack.run(natural_model, x, y, ThreatModel(Norm.L2, 0.05), seed=0)
        large = attack.run(natural_model, x, y, ThreatModel(Norm.L2, 3.0), seed=0)
    assert large.success.float().mean() > 0.9
    assert small.success.sum() < large.success.sum()
    assert float(distance(Norm.L2, small.x_adv, x).max()) <= 0.05 + 1e-5


class _LyingAttack(Attack):
    """Claims success with a perturbation twice the budget."""

    def run(self, model, x, y, threat, seed):
        return AttackOutput((x + 2 * threat.eps).clamp(0, 1), torch.ones(len(y), dtype=torch.bool))


def test_verification_rejects_claimed_successes_outside_the_ball(natural_model, points):
    x, y = points
    out = _LyingAttack("liar", 1, None).run(natural_model, x, y, LINF, 0)
    with pytest.raises(VerificationError, match="outside the ε-ball"):
        verify_successes(natural_model, x, out.x_adv, y, out.success, LINF, "liar")


def test_verification_rejects_successes_that_are_still_correct(natural_model, points):
    x, y = _correct(natural_model, *points)
    with pytest.raises(VerificationError, match="still classified correctly"):
        verify_successes(natural_model, x, x.clone(), y, torch.ones(len(y), dtype=torch.bool), LINF, "liar")


def test_random_noise_is_batch_independent_verified_and_stops_at_the_first_success(natural_model, points):
    threat = ThreatModel(Norm.LINF, 0.1)
    x, y = points[0][:40], points[1][:40]
    with natural_model.attack_mode():
        keep = natural_model.predict(x) == y
        x, y = x[keep], y[keep]
        noise = build_attack("noise", {"draws": "100"})
        alone = noise.run(natural_model, x[:5], y[:5], threat, seed=3)
        batch = noise.run(natural_model, x, y, threat, seed=3)
        assert torch.equal(alone.success, batch.success[:5]) and torch.equal(alone.x_adv, batch.x_adv[:5])
        broken = batch.success
        assert 0 < int(broken.sum()) < len(y)  # random corners break some points of a standard CNN, not all
        assert bool((natural_model.predict(batch.x_adv[broken]) != y[broken]).all())
        assert float(distance(Norm.LINF, batch.x_adv, x).max()) <= 0.1 + 1e-6
        assert torch.equal(batch.x_adv[~broken], x[~broken])
        more = build_attack("noise", {"draws": "300"}).run(natural_model, x, y, threat, seed=3)
        assert bool((more.success | ~broken).all())  # more draws keep every success of fewer (same stream)
