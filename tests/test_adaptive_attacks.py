"""Each adaptive attack succeeds where the standard attacks fail, on a model built for it."""

from __future__ import annotations

import pytest
import torch

from bench.attacks import build_attack, build_attacks, format_attacks, parse_attacks
from bench.attacks.base import AttackContext
from bench.errors import BenchError
from bench.evaluation.committed import attack_context
from bench.loading.model import ModelUnderTest
from bench.loading.sources import ModelSpec, load_user_model
from bench.threat import Norm, ThreatModel
from defenses.training import checkpoints
from tests.adaptive_toys import HardMaskNet, TinyLogitNet, gray_points
from tests.conftest import COMMITTED

LINF = ThreatModel(Norm.LINF, 0.1)
FEW_ITERATIONS = {name: {"n_iter": "20", "n_target_classes": "2"} for name in ("ra-aux", "ra-bpda", "spat-scaled")}


def _success_rate(name: str, model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor,
                  params: dict[str, str] | None = None, context: AttackContext | None = None) -> float:
    attack = build_attack(name, params, context or attack_context(None))
    rates = []
    with model.attack_mode():
        for stage in attack.stages():
            out = stage.run(model, x, y, LINF, seed=0)
            x_adv = out.x_adv
            assert float((x_adv - x).abs().max()) <= LINF.eps + 1e-6
            with torch.no_grad():
                rates.append(float((model(x_adv).argmax(1) != y).float().mean()))
    return max(rates)


@pytest.mark.parametrize("adaptive", ["ra-sum", "ra-aux", "ra-bpda"])
def test_reverse_attention_attacks_break_a_hard_mask_that_hides_the_gradient(adaptive):
    model = ModelUnderTest(HardMaskNet(), 10)
    x, y = gray_points()
    with torch.no_grad():
        assert bool((model(x).argmax(1) == y).all())
    for standard in ("fgsm", "pgd", "apgd-ce"):
        assert _success_rate(standard, model, x, y) == 0.0, standard
    assert _success_rate(adaptive, model, x, y, FEW_ITERATIONS.get(adaptive)) == 1.0


def test_scaled_logit_attack_breaks_what_unscaled_ce_attacks_miss():
    model = ModelUnderTest(TinyLogitNet(), 10)
    x, y = gray_points()
    for standard in ("pgd", "apgd-ce"):
        assert _success_rate(standard, model, x, y) == 0.0, standard
    assert _success_rate("spat-scaled", model, x, y, FEW_ITERATIONS["spat-scaled"]) == 1.0
    assert model.module.head.scaled is False  # the switch is restored


def _masked_standard_cnn(points):
    spec = ModelSpec("examples.toy_models:rounded_smallcnn", weights=COMMITTED / "standard-smallcnn.pt")
    model = ModelUnderTest(load_user_model(spec, "fashion-mnist", "linf").module, 10)
    x, y = points[0][:40], points[1][:40]
    keep = model.predict(x) == y
    return model, x[keep][:20], y[keep][:20]


def test_transfer_and_long_square_break_a_rounding_layer_that_stops_pgd(points):
    model, x, y = _masked_standard_cnn(points)
    assert _success_rate("pgd", model, x, y) < 0.25
    surrogate = str(COMMITTED / "standard-smallcnn.pt")
    assert _success_rate("transfer", model, x, y, {"surrogate": surrogate}) > 0.9
    assert _success_rate("square-long", model, x, y, {"queries": "300"}) > 0.9


def test_soft_mask_keeps_ancra_forward_values_and_opens_a_gradient(points):
    module, _ = checkpoints.load(COMMITTED / "ancra-smallcnn-ra.pt")
    x = points[0][:16].clone().requires_grad_(True)
    hard, hard_aux = module.forward_all(x)
    soft, soft_aux = module.forward_all(x, soft_mask=1.0)
    assert torch.equal(hard, soft) and all(torch.equal(a, b) for a, b in zip(hard_aux, soft_aux, strict=True))
    g_hard, = torch.autograd.grad(hard[:, 0].sum(), x)
    g_soft, = torch.autograd.grad(soft[:, 0].sum(), x)
    assert not torch.allclose(g_hard, g_soft)


def test_adaptive_expands_per_defense_and_labels_are_canonical():
    def labels(defense):
        return [a.label for a in build_attacks(parse_attacks("adaptive"), Norm.LINF, attack_context("fashion-mnist", defense))]

    assert labels("ancra") == ["ra-sum", "ra-aux", "ra-bpda", "transfer", "square-long"]
    assert labels("spat") == ["spat-scaled", "transfer", "square-long"]
    assert labels("pgd-at") == ["transfer:trades", "square-long"]  # never itself as its surrogate
    assert labels(None) == ["transfer", "square-long"]
    context = attack_context("fashion-mnist")
    assert build_attack("transfer", {"surrogate": "trades"}, context).label == "transfer:trades"
    assert [a.label for a in build_attacks(parse_attacks("transfer:trades"), Norm.LINF, context)] == ["transfer:trades"]
    assert all(a.adaptive for a in build_attacks(parse_attacks("adaptive"), Norm.LINF, attack_context("fashion-mnist", "ancra")))


def test_adaptive_refusals_are_clear(points):
    with pytest.raises(BenchError, match="takes no parameters"):
        build_attacks(parse_attacks("adaptive:steps=3"), Norm.LINF, attack_context("fashion-mnist", "ancra"))
    with pytest.raises(BenchError, match="unknown defense 'pgd-att'. Did you mean: pgd-at"):
        build_attack("transfer", {"surrogate": "pgd-att"}, attack_context("fashion-mnist"))
    with pytest.raises(BenchError, match="write key=value"):
        build_attack("pgd", {"": "50"})
    plain = ModelUnderTest(checkpoints.load(COMMITTED / "standard-smallcnn.pt")[0], 10)
    x, y = points[0][:4], points[1][:4]
    for name in ("ra-sum", "ra-aux", "spat-scaled"):
        with pytest.raises(BenchError, match="needs a model"), plain.attack_mode():
            build_attack(name).stages()[0].run(plain, x, y, LINF, seed=0)


def test_a_sweep_plans_each_defenses_own_adaptive_attacks(tmp_path):
    from bench.evaluation.config import RunConfig
    from bench.evaluation.sweep import plan

    targets = [RunConfig("fashion-mnist", LINF, parse_attacks("adaptive"), defense=d, results_dir=tmp_path) for d in ("ancra", "pgd-at")]
    ancra, pgd_at = plan(targets, force=False)
    assert ancra.todo is not None and format_attacks(ancra.todo.attack_specs) == "ra-sum,ra-aux,ra-bpda,transfer,square-long"
    assert pgd_at.todo is not None and format_attacks(pgd_at.todo.attack_specs) == "transfer:trades,square-long"
