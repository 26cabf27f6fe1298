"""aa-fast: a differently named, cheaper AutoAttack whose stages do not depend on the batch."""

import torch

from bench.attacks import build_attack
from bench.attacks.aa_fast import SQUARE_QUERIES, TARGETS, _PerExampleStartSquare
from bench.threat import Norm, ThreatModel

LINF = ThreatModel(Norm.LINF, 0.1)


def _square(model, queries):
    return _PerExampleStartSquare(model, norm="Linf", n_queries=queries, eps=LINF.eps, p_init=0.8, n_restarts=1,
                                  seed=0, resc_schedule=False, device="cpu")


class OneByOne(torch.nn.Module):
    """The model run one example at a time: its logits cannot depend on the batch. (On some CPUs a
    convolution's result moves by ~1e-6 with the batch size — measured 1.4e-6 on the pgd-at SmallCNN,
    Intel AVX-512 — which flips Square's accept/reject on a few points; that is the model's float
    noise, not Square's randomness, which is what this test is about.)"""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.model(x[i:i + 1]) for i in range(x.shape[0])])


def test_square_with_per_example_stripes_is_independent_of_the_batch(committed_robust, points):
    x, y = points
    keep = committed_robust.predict(x) == y
    x, y = x[keep][:40], y[keep][:40]
    model = OneByOne(committed_robust)

    def best_points(xs, ys):  # the run's best-loss points (perturb returns only the successes)
        square = _square(model, 60)
        square.init_hyperparam(xs)
        torch.random.manual_seed(0)  # as perturb does before each run
        return square.attack_single_run(xs, ys)[1]

    with torch.inference_mode():
        whole = best_points(x, y)
        parts = torch.cat([best_points(x[s], y[s]) for s in (slice(0, 15), slice(15, None))])
    assert torch.equal(whole, parts)
    assert bool((whole != x).flatten(1).any(1).all())  # every point moved


def test_a_shorter_square_run_is_a_prefix_of_a_longer_one(committed_robust, points):
    """AutoAttack's fixed p-schedule: whatever 40 queries find, 80 queries find identically."""
    x, y = points
    keep = committed_robust.predict(x) == y
    x, y = x[keep][:60], y[keep][:60]
    with torch.inference_mode():
        short = committed_robust.predict(_square(committed_robust, 40).perturb(x, y)) != y
        long = committed_robust.predict(_square(committed_robust, 80).perturb(x, y)) != y
    assert bool((long | ~short).all())  # every short success is a long success


def test_aa_fast_is_a_separate_protocol_and_breaks_a_natural_model(natural_model, points):
    attack = build_attack("aa-fast")
    assert attack.label == "aa-fast" and [getattr(s, "component", s.label) for s in attack.stages()] == ["apgd", "square"]
    assert attack.independent_of_batch(LINF) and not attack.independent_of_batch(ThreatModel(Norm.L2, 1.0))
    assert not build_attack("aa").independent_of_batch(LINF)  # the official one stays as it is
    assert TARGETS == 9 and SQUARE_QUERIES < 5000
    x, y = points
    keep = natural_model.predict(x) == y
    x, y = x[keep][:50], y[keep][:50]
    with natural_model.attack_mode():
        out = attack.stages()[0].run(natural_model, x, y, LINF, seed=0)
    assert bool(out.success.all())
    assert out.broken_by is not None and set(out.broken_by) <= {"apgd-ce"} | {f"apgd-t/target{k}" for k in range(1, 10)}
