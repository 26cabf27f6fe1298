"""MALT's target ranking: the linearised boundary distance, exact on a linear model."""

import torch
from torch import nn

from bench.attacks.malt import boundary_distances, ranked_targets
from bench.model import ModelUnderTest
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
