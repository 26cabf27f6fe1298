"""Certificates are sound and ordered: nothing in the ball, found by sampling or by any attack, beats a
proven margin; IBP ⊆ CROWN ⊆ exact; the MILP's minimum is brute-force enumeration's; and only chains of
admitted layers are bounded."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import optimize
from torch import nn

import bench
from bench.errors import BenchError
from bench.loading.model import Normalize
from bench.verifier.exact import Outcome, _Encoding, dense_layers
from bench.verifier.intervals import ibp_margins, input_box, margin_spec
from bench.verifier.linear import crown_bounds, layer_bounds
from bench.verifier.network import Chain
from bench.verifier.runner import ALLOWANCE, Method, certify_points
from defenses.nets.pooling import MaxPool2x2


def _mlp(seed: int, sizes: tuple[int, ...] = (6, 5, 4, 3), shape: tuple[int, ...] = (1, 2, 3)) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Flatten()]
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1]).eval()


def _cnn(seed: int) -> nn.Module:
    """Every admitted layer at once: normalization, convolutions, eval BatchNorm, both poolings."""
    torch.manual_seed(seed)
    bn = nn.BatchNorm2d(4)
    bn.running_mean.uniform_(-0.2, 0.2)
    bn.running_var.uniform_(0.5, 2.0)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-0.2, 0.2)
    return nn.Sequential(Normalize([0.3], [0.4]), nn.Conv2d(1, 4, 3, padding=1), bn, nn.ReLU(), MaxPool2x2(),
                         nn.Conv2d(4, 6, 3, stride=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(6, 12), nn.ReLU(), nn.Dropout(0.5), nn.Linear(12, 4)).eval()


def _points(model: nn.Module, shape: tuple[int, ...], n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand((n, *shape), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return x, model(x).argmax(dim=1)  # labels the model gets right: the interesting side


def _true_margins(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """[n, classes − 1] logit_y − logit_j at `x`, in the spec's class order."""
    with torch.no_grad():
        logits = model(x).double()
    return (margin_spec(y, logits.shape[1], torch.float64) @ logits[:, :, None])[:, :, 0]


@pytest.mark.parametrize("seed", range(3))
def test_no_sampled_point_of_the_ball_beats_a_bound(seed):
    model, shape, eps = _cnn(seed), (1, 8, 8), 0.05
    x, y = _points(model, shape, 6, seed)
    box = input_box(x.double(), eps)
    spec = margin_spec(y, 4, torch.float64)
    ibp, crown = ibp_margins(Chain.of(model, shape), box, spec), crown_bounds(Chain.of(model, shape), box, spec)[0]
    assert torch.all(crown >= ibp - 1e-9)
    g = torch.Generator().manual_seed(seed)
    for _ in range(20):  # corners of the ball and uniform points, clipped to [0, 1]
        corner = torch.where(torch.rand(x.shape, generator=g) < 0.5, -eps, eps)
        inside = (torch.rand(x.shape, generator=g) * 2 - 1) * eps
        for delta in (corner, inside):
            seen = _true_margins(model, (x + delta).clamp(0, 1), y)
            assert torch.all(seen >= crown - 1e-6), (seen - crown).min()


def test_no_attack_breaks_a_certified_point_or_goes_below_its_bound():
    model, shape, eps = _cnn(5), (1, 8, 8), 0.05
    x, y = _points(model, shape, 16, 5)
    cert = certify_points(model, x, y, eps, Method.CROWN)
    assert 0 < cert.certified.sum() < len(x), "the check needs certified and uncertified points"
    for spec in ("fgsm", "pgd:steps=40,restarts=2", "apgd-ce", "apgd-dlr", "cw", "square", "aa-fast"):
        found = bench.attack(model, x, y, spec, eps=eps)
        assert not (found.success.numpy() & cert.certified).any(), spec
        seen = _true_margins(model, found.x_adv, y).min(dim=1).values.numpy()
        assert np.all(seen >= cert.margins - 1e-6), spec


def _brute_force_minimum(model: nn.Module, x: torch.Tensor, label: int, other: int, eps: float) -> float:
    """min over the box of logit_label − logit_other, one linear program per activation pattern."""
    layers = dense_layers(Chain.of(model, tuple(x.shape)))
    lo, hi = (t.flatten().numpy() for t in input_box(x[None].double(), eps))
    hidden = [layer.bias.size for layer in layers[:-1]]
    best = np.inf
    for pattern in itertools.product((0, 1), repeat=sum(hidden)):
        # activations as affine maps of x: a = M x + c; constraints keep each pre-activation on its side
        m, c = np.eye(lo.size), np.zeros(lo.size)
        rows, bounds = [], []
        at = 0
        for layer, h in zip(layers[:-1], hidden, strict=True):
            zm, zc = layer.weight @ m, layer.weight @ c + layer.bias
            on = np.array(pattern[at:at + h], dtype=bool)
            at += h
            rows += [-zm[on], zm[~on]]  # on: z ≥ 0 (−z ≤ 0); off: z ≤ 0
            bounds += [zc[on], -zc[~on]]
            m, c = zm * on[:, None], zc * on
        last = layers[-1]
        w = (last.weight[label] - last.weight[other]) @ m
        const = (last.weight[label] - last.weight[other]) @ c + last.bias[label] - last.bias[other]
        res = optimize.linprog(w, A_ub=np.vstack(rows), b_ub=np.concatenate(bounds), bounds=list(zip(lo, hi, strict=True)),
                               method="highs")
        if res.status == 0:
            best = min(best, res.fun + const)
    return float(best)


@pytest.mark.parametrize("seed", range(2))
def test_the_milp_minimum_is_brute_force_enumerations(seed):
    model, shape, eps = _mlp(seed), (1, 2, 3), 0.1
    x, y = _points(model, shape, 3, seed)
    chain = Chain.of(model, shape)
    layers = dense_layers(chain)
    for i in range(len(x)):
        box = input_box(x[i:i + 1].double(), eps)
        pre = layer_bounds(chain, box)
        encoding = _Encoding(layers, (box[0].flatten().numpy(), box[1].flatten().numpy()),
                             [(lo[0].flatten().numpy(), hi[0].flatten().numpy()) for lo, hi in pre.values()])
        for other in range(3):
            if other == int(y[i]):
                continue
            proven, found, _ = encoding.minimise_margin(int(y[i]), other, 10.0)
            exact = _brute_force_minimum(model, x[i], int(y[i]), other, eps)
            assert proven == pytest.approx(exact, abs=1e-6) and found == pytest.approx(exact, abs=1e-6)
            # the decision's cheaper question (can the margin fall to the allowance?) agrees with the minimum
            possible, low, _ = encoding.search_below(int(y[i]), other, ALLOWANCE, 10.0)
            assert possible is (exact <= ALLOWANCE) and (not possible or low == pytest.approx(exact, abs=1e-6)
                                                         or low < 0)


@pytest.mark.parametrize("seed", range(3))
def test_milp_decisions_agree_with_enumeration_with_and_without_the_counterexample_search(seed, monkeypatch):
    """The decision per point is the sign of the enumerated minimum over all classes, whether a refutation
    comes from the gradient search or from the solver (the search switched off)."""
    model, shape, eps = _mlp(seed), (1, 2, 3), 0.1
    x, y = _points(model, shape, 6, seed)
    truth = np.array([min(_brute_force_minimum(model, x[i], int(y[i]), j, eps) for j in range(3) if j != int(y[i]))
                      for i in range(len(x))])
    for search in (True, False):
        if not search:
            monkeypatch.setattr("bench.verifier.runner.search_counterexample", lambda *_: None)
        cert = certify_points(model, x, y, eps, Method.MILP, time_limit=20)
        decided = cert.certified | cert.refuted
        assert decided[np.abs(truth) > 1e-3].all()
        assert (cert.certified[decided] == (truth[decided] > ALLOWANCE)).all()


@pytest.mark.parametrize("seed", range(3))
def test_ibp_within_crown_within_exact(seed):
    model, shape, eps = _mlp(seed, (6, 8, 8, 3)), (1, 2, 3), 0.15
    x, y = _points(model, shape, 30, seed)
    ibp, crown, milp = (certify_points(model, x, y, eps, m, time_limit=20) for m in Method)
    assert milp.undecided.sum() == 0
    assert not (ibp.certified & ~crown.certified).any() and not (crown.certified & ~milp.certified).any()
    assert not (crown.certified & milp.refuted).any()
    assert np.all(ibp.margins <= crown.margins + 1e-9)
    decided = milp.certified
    assert np.all(crown.margins[decided] <= milp.margins[decided] + 1e-9)
    # a refutation is a real point of the ball the float32 model misclassifies
    assert np.all(milp.margins[milp.refuted] <= 0)
    assert milp.refuted.sum() > 0 and crown.certified.sum() < milp.certified.sum() + milp.refuted.sum()


def test_a_misclassified_point_is_refuted_by_every_method():
    model, shape = _mlp(0), (1, 2, 3)
    x, y = _points(model, shape, 4, 0)
    wrong = (y + 1) % 3
    for method in Method:
        cert = certify_points(model, x, wrong, 0.01, method)
        assert cert.refuted.all() and not cert.certified.any()


def test_an_undecided_point_when_time_runs_out(monkeypatch):
    monkeypatch.setattr("bench.verifier.runner.search_counterexample", lambda *_: None)  # the solver's time only
    model, shape = _mlp(1, (6, 40, 40, 3)), (1, 2, 3)
    x, y = _points(model, shape, 3, 1)
    cert = certify_points(model, x, y, 0.3, Method.MILP, time_limit=1e-4)
    assert cert.undecided.any()


@pytest.mark.parametrize(("layer", "message"), [
    (nn.Tanh(), "cannot bound layer 2 (Tanh): the verifier admits Linear, Conv2d"),
    (nn.MaxPool2d(3, stride=1), "cannot bound layer 2 (MaxPool2d): only max-pooling over non-overlapping"),
])
def test_an_unadmitted_layer_is_refused_by_name(layer, message):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), layer, nn.Flatten(), nn.LazyLinear(3))
    model(torch.rand(1, 1, 8, 8))
    with pytest.raises(BenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Chain.of(model, (1, 8, 8))


class _Residual(nn.Module):
    """Declares a chain but adds a skip connection its layers do not show."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))

    def layer_chain(self) -> nn.Sequential:
        return self.body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x.flatten(1)


def test_a_declared_chain_that_is_not_the_forward_is_refused():
    x = torch.rand(3, 1, 2, 2)
    with pytest.raises(BenchError, match="not the chain of its layers"):
        certify_points(_Residual(), x, torch.zeros(3, dtype=torch.long), 0.1, Method.IBP)


def test_milp_refuses_max_pooling_and_names_the_layer():
    model = _cnn(0)
    x, y = _points(model, (1, 8, 8), 2, 0)
    with pytest.raises(BenchError, match="layer 4 is a max-pool"):
        certify_points(model, x, y, 0.01, Method.MILP)


def test_the_committed_smallcnn_is_its_chain_and_its_bounds_hold():
    from bench.data import Split, load
    from bench.evaluation.resolve import resolve

    module = resolve("fashion-mnist", "linf", defense="pgd-at").module
    x, y = load("fashion-mnist", Split.TEST).batch(slice(0, 4))
    chain = Chain.of(module.eval(), (1, 28, 28))
    assert [op.where for op in chain.ops][:3] == ["normalize", "features.0", "features.1"]
    eps = 0.002
    bound = ibp_margins(chain, input_box(x.double(), eps), margin_spec(y, 10, torch.float64))
    found = bench.attack(module, x, y, "pgd:steps=20", eps=eps)
    assert torch.all(_true_margins(module, found.x_adv, y) >= bound - 1e-6)
    assert ALLOWANCE == 1e-4 and Outcome.CERTIFIED.value == "certified"
