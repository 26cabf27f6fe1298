"""The binarization test: its construction holds what it promises (a boundary point at distance ε
that the binarized model calls "boundary", x called "inner"), it fails on masked models and on a
weakened attack, and passes with full-strength attacks on the committed pgd-at checkpoint."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.attacks import build_attacks, parse_attacks
from bench.auditing.binarization import (
    BinarizationSettings,
    BinarizedModule,
    _features,
    _fit_readout,
    _inner,
    _on_sphere,
    find_readout,
    run_binarization,
)
from bench.loading.model import ModelUnderTest
from bench.loading.sources import ModelSpec, load_user_model
from bench.norms import distance
from bench.threat import Norm, ThreatModel
from defenses.training import checkpoints
from tests.conftest import COMMITTED

LINF = ThreatModel(Norm.LINF, 0.1)
L2 = ThreatModel(Norm.L2, 1.5)


def _correct(model: ModelUnderTest, points, n: int) -> tuple[torch.Tensor, list[int]]:
    x, y = points[0][:3 * n], points[1][:3 * n]
    keep = model.predict(x) == y
    return x[keep][:n], [i for i, k in enumerate(keep.tolist()) if k][:n]


def _toy(factory: str) -> ModelUnderTest:
    spec = ModelSpec(f"examples.toy_models:{factory}", weights=COMMITTED / "standard-smallcnn.pt")
    return ModelUnderTest(load_user_model(spec, "fashion-mnist", "linf").module, 10)


def _test(model: ModelUnderTest, points, attacks: str, n: int, threat: ThreatModel = LINF):
    x, indices = _correct(model, points, n)
    return run_binarization(model, x, indices, threat, build_attacks(parse_attacks(attacks), threat.norm),
                            BinarizationSettings(points=n), seed=0)


@pytest.mark.parametrize("threat", [LINF, L2], ids=["linf", "l2"])
def test_boundary_points_lie_on_the_eps_sphere_and_inner_points_inside_the_gap(points, threat):
    x = points[0][0]
    gen = torch.Generator().manual_seed(0)
    surface = _on_sphere(threat.norm, x, threat.eps, gen, 8)
    inner = _inner(threat.norm, x, 0.95 * threat.eps, gen, 8)
    rep = x.expand(8, *x.shape)
    assert torch.allclose(distance(threat.norm, surface, rep), torch.full((8,), threat.eps), atol=1e-5)
    assert bool((distance(threat.norm, inner, rep) <= 0.95 * threat.eps + 1e-6).all())
    assert surface.min() >= 0 and surface.max() <= 1 and inner.min() >= 0 and inner.max() <= 1


def test_the_binarized_model_calls_x_inner_and_the_boundary_point_boundary(committed_robust, points):
    readout = find_readout(committed_robust, points[0][:2])
    assert not isinstance(readout, str) and readout.call == 1 and readout.features == 200
    x = points[0][3]
    gen = torch.Generator().manual_seed(1)
    inner = torch.cat([x[None], _inner(Norm.LINF, x, 0.095, gen, 99)])
    outer = _on_sphere(Norm.LINF, x, 0.1, gen, 1)
    train = torch.cat([inner, outer])
    labels = torch.cat([torch.zeros(100, dtype=torch.long), torch.ones(1, dtype=torch.long)])
    with committed_robust.attack_mode():
        binary = _fit_readout(_features(committed_robust, readout, train), labels, 500, 0.99)
        assert binary is not None
        binarized = committed_robust.around(BinarizedModule(committed_robust.module, readout, binary), 2)
        assert torch.equal(binarized.predict(train), labels)  # x → 0, the point at distance ε → 1
        assert committed_robust.predict(x[None]).shape == (1,)  # the original model is untouched
        assert committed_robust(x[None]).shape == (1, 10)


def test_unseparable_features_are_a_construction_failure_not_a_pass():
    features = torch.zeros(10, 3, dtype=torch.float64)  # every point has the same features
    labels = torch.tensor([0] * 9 + [1])
    assert _fit_readout(features, labels, 100, 0.99) is None


def test_full_strength_attacks_pass_on_pgd_at_and_a_weakened_one_fails(committed_robust, points):
    result = _test(committed_robust, points, "pgd,apgd,pgd:steps=1,random_start=false", 20)
    assert result.applicable and result.tasks == 20 and not result.construction_failed
    by = {a.label: a for a in result.attacks}
    assert by["pgd"].passed == 20 and by["apgd"].passed == 20
    weak = by["pgd:random_start=false,steps=1"]
    assert weak.fails_test and weak.passed <= 14, weak
    assert not result.passed
    assert result.validation_accuracy > 0.95  # the readout calls fresh inner draws inner


@pytest.mark.parametrize("factory", ["rounded_smallcnn", "hard_argmax_smallcnn"])
def test_masked_models_fail_while_random_draws_find_the_boundary(factory, points):
    result = _test(_toy(factory), points, "pgd,apgd", 12)
    assert result.applicable and result.tasks == 12
    assert all(a.passed == 0 and a.fails_test for a in result.attacks), result.attacks
    assert result.random_baseline > 0  # the adversarial examples exist and random search finds some
    assert not result.passed


def test_reverse_attention_binarizes_the_last_call_of_its_shared_head(points):
    module, _ = checkpoints.load(COMMITTED / "ancra-smallcnn-ra.pt")
    model = ModelUnderTest(module, 10)
    with model.attack_mode():
        readout = find_readout(model, points[0][:2])
    assert not isinstance(readout, str) and readout.call == 3  # two RA blocks, then the logits
    result = _test(model, points, "pgd", 4)
    assert result.applicable and "call 3 of 3" in result.reason and result.tasks == 4


class _NoReadout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 10, 28)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).flatten(1)


def test_a_model_without_a_linear_readout_is_reported_not_applicable(points):
    result = _test(ModelUnderTest(_NoReadout(), 10), points, "pgd", 3)
    assert not result.applicable and "no readout layer" in result.reason
    assert result.passed  # nothing was tested, so nothing failed; the audit shows "not applicable"
