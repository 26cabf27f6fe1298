"""What `--precision`, `--device`, `--budget` and torchrun detection mean, checked without a GPU."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench import distributed
from bench.device import resolve_device
from bench.errors import BenchError, VerificationError
from bench.loading.model import ModelUnderTest, Precision, Speed, tensor_cores_for_fp32
from bench.threat import Norm, ThreatModel
from bench.verify import BOUNDARY_NOISE, verify_successes
from defenses.training.registry import BUDGETS, DEFENSES

LINF = ThreatModel(Norm.LINF, 0.1)


def _flags() -> tuple[bool, bool]:
    return torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


@pytest.mark.parametrize("precision,inside", [(Precision.FP32, (False, False)), (Precision.TF32, (True, True)),
                                              (Precision.BF16, (False, False))])
def test_attack_arithmetic_sets_tf32_and_the_reference_is_always_ieee_fp32(natural_model, precision, inside):
    before = _flags()
    model = ModelUnderTest(natural_model.module, 10, speed=Speed(precision))
    with model.attack_mode():
        assert _flags() == inside  # backward passes run under these flags too
        with model.full_precision():
            assert _flags() == (False, False)
        assert _flags() == inside
    assert _flags() == before
    with tensor_cores_for_fp32(True):
        assert _flags() == (True, True)
    assert _flags() == before


def _linear_with_margin(margin: float) -> ModelUnderTest:
    """Logits (margin, 0, …) for every input: class 0 wins by exactly `margin`."""
    layer = nn.Linear(4, 10)
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()
        layer.bias[0] = margin
    return ModelUnderTest(nn.Sequential(nn.Flatten(), layer), 10)


def test_a_claim_on_the_decision_boundary_counts_robust_instead_of_failing_the_run():
    model = _linear_with_margin(BOUNDARY_NOISE / 2)
    x, y = torch.rand(3, 1, 2, 2), torch.zeros(3, dtype=torch.long)
    with model.attack_mode():
        held = verify_successes(model, x, x.clone(), y, torch.ones(3, dtype=torch.bool), LINF, "edge")
    assert not bool(held.any())


def test_a_clearly_false_claim_in_fp32_is_a_bug_but_in_bf16_is_dropped():
    x, y = torch.rand(3, 1, 2, 2), torch.zeros(3, dtype=torch.long)
    claims = torch.tensor([True, False, True])
    fp32 = _linear_with_margin(0.5)
    with fp32.attack_mode(), pytest.raises(VerificationError, match="2 still classified correctly"):
        verify_successes(fp32, x, x.clone(), y, claims, LINF, "liar")
    bf16 = ModelUnderTest(fp32.module, 10, speed=Speed(Precision.BF16))
    with bf16.attack_mode():
        held = verify_successes(bf16, x, x.clone(), y, claims, LINF, "low-precision")
    assert held.tolist() == [False, False, False]


def test_reduced_precision_never_excuses_a_claim_outside_the_ball(natural_model, points):
    x, y = points
    bf16 = ModelUnderTest(natural_model.module, 10, speed=Speed(Precision.BF16))
    with bf16.attack_mode(), pytest.raises(VerificationError, match="outside the ε-ball"):
        verify_successes(bf16, x[:4], (x[:4] + 0.5).clamp(0, 1), y[:4], torch.ones(4, dtype=torch.bool), LINF, "x")


def test_devices_are_parsed_once_with_one_line_errors(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(BenchError, match="CUDA is not available"):
            resolve_device("cuda:1")
    for text in ("mps", "gpu", "cuda:x"):
        with pytest.raises(BenchError, match="invalid --device"):
            resolve_device(text)


def test_torchrun_is_detected_from_its_variables_even_with_one_rank(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert not distributed.launched_by_torchrun()
    for name, value in (("RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29500")):
        monkeypatch.setenv(name, value)
    assert distributed.launched_by_torchrun()


def test_the_full_budget_scales_every_recipe_by_one_rule():
    full = BUDGETS.get("full")
    for name, defense in DEFENSES.items():
        recipe = defense.recipes["fashion-mnist"]
        scaled = full.apply(recipe)
        assert scaled.epochs == 5 * recipe.epochs and scaled.train_points is None, name
        assert scaled.milestones == tuple(5 * m for m in recipe.milestones)
        for key, value in recipe.params.items():
            expected = 5 * value if key.endswith("_epochs") else value
            assert scaled.params[key] == expected, (name, key)
        assert BUDGETS.get("recipe").apply(recipe) == recipe


def test_kendall_tau_agrees_with_scipy_on_random_rankings():
    import random

    from scipy.stats import kendalltau

    from bench.stats import kendall_tau

    rng = random.Random(0)
    for n in (2, 3, 5, 11):
        items = [f"d{i}" for i in range(n)]
        for _ in range(20):
            other = rng.sample(items, n)
            expected = kendalltau([items.index(x) for x in items], [other.index(x) for x in items]).statistic
            assert abs(kendall_tau(items, other) - expected) < 1e-12
    assert kendall_tau(["a", "b", "c"], ["a", "b", "c"]) == 1.0 and kendall_tau(["a", "b"], ["b", "a"]) == -1.0
