"""Our APGD against the official code (pyautoattack) on the same points, and its pass savings."""

import pytest
import torch
from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted

from bench.attacks import build_attack
from bench.threat import Norm, ThreatModel

LINF = ThreatModel(Norm.LINF, 0.1)
L2 = ThreatModel(Norm.L2, 1.5)


def _robust_after(model, x, y, adv):
    return model.predict(adv) == y


def _official(model, threat, loss, steps, targets):
    norm = threat.norm.autoattack_name
    if targets:
        return APGDAttack_targeted(model, n_iter=steps, norm=norm, eps=threat.eps, seed=0, device="cpu",
                                   n_target_classes=targets)
    return APGDAttack(model, n_iter=steps, norm=norm, eps=threat.eps, seed=0, loss=loss, device="cpu")


@pytest.mark.parametrize(("name", "params", "loss", "targets", "threat"), [
    ("apgd", {}, "ce", 0, LINF),
    ("apgd", {"loss": "dlr"}, "dlr", 0, LINF),
    ("apgd-targeted", {"targets": "2"}, None, 2, LINF),
    ("apgd", {}, "ce", 0, L2),
], ids=["ce", "dlr", "targeted", "ce-l2"])
def test_our_apgd_agrees_with_pyautoattack_per_example_with_fewer_passes(committed_robust, points, name, params,
                                                                         loss, targets, threat):
    x, y = points
    keep = committed_robust.predict(x) == y
    x, y = x[keep][:60], y[keep][:60]
    steps = 40
    with committed_robust.attack_mode():
        before = committed_robust.passes.snapshot()
        official = _official(committed_robust, threat, loss, steps, targets).perturb(x, y)
        official_passes = committed_robust.passes.since(before).backward
        before = committed_robust.passes.snapshot()
        ours = build_attack(name, {**params, "steps": str(steps)}).run(committed_robust, x, y, threat, seed=0)
        our_passes = committed_robust.passes.since(before).backward
    theirs = _robust_after(committed_robust, x, y, official)
    mine = _robust_after(committed_robust, x, y, ours.x_adv)
    assert torch.equal(mine, ~ours.success)
    assert 0 < int((~theirs).sum()) < len(y)  # the comparison is not vacuous: some broken, some robust
    assert (mine == theirs).float().mean() >= 0.99, (int(mine.sum()), int(theirs.sum()))
    assert our_passes < official_passes  # broken points left the batch


def test_apgd_on_a_natural_model_stops_almost_at_once(natural_model, points):
    x, y = points
    keep = natural_model.predict(x) == y
    x, y = x[keep], y[keep]
    with natural_model.attack_mode():
        before = natural_model.passes.snapshot()
        out = build_attack("apgd").run(natural_model, x, y, LINF, seed=0)
        spent = natural_model.passes.since(before)
    assert bool(out.success.all())
    assert spent.backward / len(y) < 10  # the official code spends 101 per point whatever happens


def test_per_example_starts_make_apgd_independent_of_the_batch(committed_robust, points):
    x, y = points
    keep = committed_robust.predict(x) == y
    x, y = x[keep][:48], y[keep][:48]
    attack = build_attack("apgd", {"per_example_start": "true", "steps": "20"})
    assert attack.independent_of_batch(LINF)
    with committed_robust.attack_mode():
        whole = attack.run(committed_robust, x, y, LINF, seed=3).success
        halves = torch.cat([attack.run(committed_robust, x[s], y[s], LINF, seed=3).success
                            for s in (slice(0, 20), slice(20, None))])
        other_seed = attack.run(committed_robust, x, y, LINF, seed=4).x_adv
        same_seed = attack.run(committed_robust, x, y, LINF, seed=3).x_adv
    assert torch.equal(whole, halves)
    assert not torch.equal(other_seed, same_seed)


def test_targeted_apgd_names_the_target_rank_that_succeeded(natural_model, points):
    x, y = points
    keep = natural_model.predict(x) == y
    with natural_model.attack_mode():
        out = build_attack("apgd-targeted", {"targets": "3", "steps": "10"}).run(
            natural_model, x[keep][:30], y[keep][:30], LINF, seed=0)
    assert out.broken_by is not None
    assert {b for b in out.broken_by if b} <= {"target1", "target2", "target3"}
