"""MALT's target ranking: the linearised boundary distance, exact on a linear model."""

import torch
from torch import nn

from bench.attacks.malt import boundary_distances, ranked_targets
from bench.loading.model import ModelUnderTest
from bench.threat import Norm


def _linear(weight: torch.Tensor, bias: torch.Tensor) -> ModelUnderTest:
    layer = nn.Sequential(nn.Flatten(), nn.Linear(weight.shape[1], weight.shape[0]))
    with torch.no_grad():
        layer[1].weight.copy_(weight)
        layer[1].bias.copy_(bias)
    model = ModelUnderTest(layer, weight.shape[0])
    model.eval()
    return model


def test_the_distance_is_exact_for_a_linear_model_under_both_norms():
    gen = torch.Generator().manual_seed(0)
    w, b = torch.randn(4, 6, generator=gen), torch.randn(4, generator=gen)
    model = _linear(w, b)
    x = torch.rand(5, 1, 2, 3, generator=gen)
    y = torch.tensor([0, 1, 2, 3, 0])
    z = x.flatten(1) @ w.T + b
    for norm, dual in ((Norm.LINF, 1), (Norm.L2, 2)):
        got = boundary_distances(model, x, y, norm)
        for i in range(5):
            for t in range(4):
                if t == y[i]:
                    assert got[i, t] == float("inf")
                    continue
                want = (z[i, y[i]] - z[i, t]) / (w[y[i]] - w[t]).norm(p=dual)
                assert torch.isclose(got[i, t], want, rtol=1e-5, atol=1e-6)


def test_a_near_boundary_behind_a_small_logit_comes_first():
    """Class 1 has the second-largest logit but moves slowly; class 2's logit is lower but the
    gradient toward it is 100× larger, so its boundary is nearer: MALT's order differs from the
    logit order exactly here."""
    w = torch.zeros(3, 4)
    w[1, 0] = 0.01
    w[2, 1] = 1.0
    model = _linear(w, torch.tensor([2.0, 1.0, 0.0]))
    x = torch.zeros(1, 1, 1, 4)
    y = torch.tensor([0])
    assert ranked_targets(model, x, y, Norm.LINF).tolist() == [[2, 1]]
    with torch.no_grad():
        assert model(x).argsort(dim=1, descending=True)[0, 1].item() == 1  # the logit order says class 1


def test_ranking_costs_one_forward_and_one_backward_per_class(committed_robust, points):
    x, y = points[0][:8], points[1][:8]
    before = committed_robust.passes.snapshot()
    order = ranked_targets(committed_robust, x, y, Norm.LINF)
    spent = committed_robust.passes.since(before)
    assert order.shape == (8, 9) and bool((order != y[:, None]).all())
    assert sorted(order[0].tolist() + [int(y[0])]) == list(range(10))
    assert (spent.forward, spent.backward) == (8, 8 * 10)


def test_aa_fast_adds_the_nearest_boundary_and_the_clean_top_class_only_when_earlier_ranks_miss_them():
    """Five classes: for example 0 the nearest boundary (class 4, fast-moving but with the lowest
    logit) is outside the top-2 logits, so it becomes the third target; for example 1 it is the
    top logit already, so the third slot is empty (−1) and costs nothing. The clean point's top
    class (class 3 for example 0, whose attacked point has moved away from it; class 1 for example
    1, already a target) fills the fourth slot only where no earlier rank had it."""
    from bench.attacks.aa_fast import union_targets

    w = torch.zeros(5, 5)
    w[4, 0] = 100.0  # class 4 moves 100× faster than the others along pixel 0
    w[1, 1], w[2, 2], w[3, 3] = 1.0, 1.0, 1.0
    model = _linear(w, torch.tensor([5.0, 3.0, 2.0, 1.0, 0.0]))
    at = torch.zeros(2, 1, 1, 5)
    at[1, 0, 0, 0] = 0.04  # class 4's logit 4.0: now the largest after the true class
    clean = at.clone()
    clean[0, 0, 0, 3] = 3.0  # at its clean point, example 0 was closest to class 3 (logit 4.0)
    y = torch.tensor([0, 0])
    order = union_targets(model, clean, at, y, Norm.LINF, by_logits=2, by_boundary=1, by_clean=1)
    assert order.tolist() == [[1, 2, 4, 3], [4, 1, -1, -1]]


def test_targeted_apgd_never_attacks_an_empty_rank(committed_robust, points):
    """A −1 in the target order means no target at that rank: the example is left as it is."""
    from bench.attacks.apgd import APGDTargeted, APGDTargetedConfig, logit_ranked_targets
    from bench.threat import ThreatModel

    x, y = points[0][:6], points[1][:6]
    attack = APGDTargeted("t", 1, APGDTargetedConfig(targets=2, steps=5, per_example_start=True))
    order = logit_ranked_targets(committed_robust, x)[:, :2].clone()
    order[:3] = -1
    before = committed_robust.passes.snapshot()
    with committed_robust.attack_mode():
        out = attack.run_ranked(committed_robust, x, y, ThreatModel(Norm.LINF, 0.1), 0, order)
    spent = committed_robust.passes.since(before)
    assert torch.equal(out.x_adv[:3], x[:3]) and not bool(out.success[:3].any())
    assert spent.backward <= 3 * 2 * 6  # only the three other examples, two ranks, ≤ 6 passes each
