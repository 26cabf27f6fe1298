"""aa-fast: a differently named, cheaper AutoAttack whose stages do not depend on the batch."""

import torch

from bench.attacks import build_attack
from bench.attacks.aa_fast import (
    BOUNDARY_TARGETS,
    CLEAN_TARGETS,
    EXTRA_STARTS,
    SQUARE_QUERIES,
    SQUARE_RESTARTS,
    SWEEP_STEPS,
    SWEEP_TARGETS,
    TARGETS,
    GradientStage,
    PerExampleStartSquare,
    SquareRestarts,
    TargetSweep,
)
from bench.attacks.apgd import logit_ranked_targets
from bench.loading.model import ModelUnderTest
from bench.threat import Norm, ThreatModel
from defenses.training import checkpoints
from tests.conftest import COMMITTED

LINF = ThreatModel(Norm.LINF, 0.1)


def _square(model, queries):
    return PerExampleStartSquare(model, norm="Linf", n_queries=queries, eps=LINF.eps, p_init=0.8, n_restarts=1,
                                 seed=0, resc_schedule=False, device="cpu")


class OneByOne(torch.nn.Module):
    """The model run one example at a time: its logits cannot depend on the batch. (On some CPUs a
    convolution's result moves by ~1e-6 with the batch size — measured 1.4e-6 on the pgd-at SmallCNN,
    Intel AVX-512 — which flips Square's accept/reject on a few points; that is the model's float
    noise, not Square's randomness, which is what these tests are about.)"""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.num_classes = 10

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.model(x[i:i + 1]) for i in range(x.shape[0])])


def _clean_correct(model, points, k):
    x, y = points
    keep = model.predict(x) == y
    return x[keep][:k], y[keep][:k]


def test_square_with_per_example_stripes_is_independent_of_the_batch(committed_robust, points):
    x, y = _clean_correct(committed_robust, points, 40)
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


def test_square_restarts_are_independent_of_the_batch(natural_model, points):
    x, y = _clean_correct(natural_model, points, 30)
    model = OneByOne(natural_model)
    stage = SquareRestarts(restarts=3, queries=4)
    with torch.inference_mode():
        whole = stage.run(model, x, y, LINF, seed=0)
        parts = [stage.run(model, x[s], y[s], LINF, seed=0) for s in (slice(0, 11), slice(11, None))]
    assert torch.equal(whole.x_adv, torch.cat([p.x_adv for p in parts]))
    assert whole.broken_by == parts[0].broken_by + parts[1].broken_by
    restarts = {name for name in whole.broken_by if name}
    assert {"square/restart1", "square/restart2"} <= restarts  # later restarts broke what the first left


def test_a_restart_draws_afresh(natural_model, points):
    """Restart 2 is not restart 1 again: it starts from other stripes, so it breaks other points."""
    x, y = _clean_correct(natural_model, points, 60)
    with torch.inference_mode():
        one = SquareRestarts(restarts=1, queries=3).run(natural_model, x, y, LINF, seed=0).success
        other_seed = SquareRestarts(restarts=1, queries=3).run(natural_model, x, y, LINF, seed=1).success
        two = SquareRestarts(restarts=2, queries=3).run(natural_model, x, y, LINF, seed=0).success
    assert bool((one != other_seed).any())
    assert torch.equal(two, one | other_seed)  # restart 2 of seed 0 is the first run of seed 1, on the rest


def test_a_shorter_square_run_is_a_prefix_of_a_longer_one(natural_model, points):
    """AutoAttack's fixed p-schedule: whatever 3 queries find, 8 queries find identically."""
    x, y = _clean_correct(natural_model, points, 60)
    with torch.inference_mode():
        short = natural_model.predict(_square(natural_model, 3).perturb(x, y)) != y
        long = natural_model.predict(_square(natural_model, 8).perturb(x, y)) != y
    assert 0 < int(short.sum()) < int(long.sum())  # the short run found some, the long one more
    assert bool(long[short].all())  # every short success is a long success


def test_aa_fast_v6_is_a_separate_protocol_and_breaks_a_natural_model(natural_model, points):
    attack = build_attack("aa-fast")
    assert attack.protocol == "aa-fast/v6"
    assert [getattr(s, "component", s.label) for s in attack.stages()] == ["apgd", "sweep", "square"]
    assert attack.independent_of_batch(LINF) and not attack.independent_of_batch(ThreatModel(Norm.L2, 1.0))
    assert not build_attack("aa").independent_of_batch(LINF)  # the official one stays as it is
    assert TARGETS < 9 and SQUARE_RESTARTS * SQUARE_QUERIES < 5000
    x, y = _clean_correct(natural_model, points, 50)
    with natural_model.attack_mode():
        out = attack.stages()[0].run(natural_model, x, y, LINF, seed=0)
    assert bool(out.success.all())
    assert out.broken_by is not None
    assert set(out.broken_by) <= ({"apgd-ce"} | {f"apgd-ce/start{k}" for k in range(2, EXTRA_STARTS + 2)}
                                  | {f"apgd-t/target{k}" for k in range(1, TARGETS + BOUNDARY_TARGETS + CLEAN_TARGETS + 1)})


def test_afd_209_falls_to_a_further_start_that_v5_never_made(fmnist_test):
    """Issue 30: torchattacks' APGD-CE (seed 0, batch position 209) broke afd #209, which v5 left
    robust. One start ends a hair from the boundary (margin 0.58 of a clean 2.12); the ninth breaks it."""
    module, _ = checkpoints.load(COMMITTED / "afd-smallcnn.pt")
    model = ModelUnderTest(module, 10)
    x, y = fmnist_test.batch(slice(209, 210))
    outcome = {}
    for extra in (0, EXTRA_STARTS):
        with model.attack_mode():
            outcome[extra] = GradientStage(TARGETS, BOUNDARY_TARGETS, CLEAN_TARGETS, extra_starts=extra).run(
                model, x, y, LINF, seed=0)
    assert not bool(outcome[0].success.any())  # v5's white-box stage
    assert outcome[EXTRA_STARTS].broken_by == ["apgd-ce/start9"]
    assert float(model.true_class_margin(outcome[EXTRA_STARTS].x_adv, y)) < 0  # and it holds in fp32


def test_further_starts_only_add_to_what_one_start_breaks(natural_model, points):
    """The extra starts run only on survivors near the boundary, and the APGD-T targets stay
    those of the first start's best point: per example v6 breaks every point v5 breaks. (The
    natural CNN at ε = 0.02 with 5 steps leaves survivors at the boundary that other starts break.)"""
    x, y = _clean_correct(natural_model, points, 120)
    small = ThreatModel(Norm.LINF, 0.02)
    with natural_model.attack_mode():
        one, more = (_short(GradientStage(TARGETS, BOUNDARY_TARGETS, CLEAN_TARGETS, extra_starts=k,
                                          near_boundary=0.5), 5).run(natural_model, x, y, small, seed=0)
                     for k in (0, 3))
    assert bool(more.success[one.success].all())
    assert int(more.success.sum()) > int(one.success.sum())
    assert any(name and name.startswith("apgd-ce/start") for name in more.broken_by or [])
    same = torch.tensor([not (name or "").startswith("apgd-ce/start") for name in more.broken_by]) & one.success
    assert torch.equal(more.x_adv[same], one.x_adv[same])  # elsewhere nothing moved


def test_on_a_hard_argmax_model_only_the_square_runs_break_anything(natural_ckpt, points):
    """10·onehot(argmax) of the standard CNN: zero gradients, so APGD finds nothing; the model is no
    more robust than the CNN behind it (≈ 0% under PGD), and aa-fast's Square runs must show it."""
    from bench.loading.sources import ModelSpec, load_user_model

    spec = ModelSpec("examples.toy_models:hard_argmax_smallcnn", weights=natural_ckpt)
    model = ModelUnderTest(load_user_model(spec, "fashion-mnist", "linf").module, 10)
    x, y = _clean_correct(model, points, 20)
    attack = build_attack("aa-fast")
    gradient, sweep, square = attack.stages()
    with model.attack_mode():
        white = gradient.run(model, x, y, LINF, seed=0)
        assert not bool(sweep.run(model, x, y, LINF, seed=0).success.any())
        with torch.inference_mode():
            black = square.run(model, x, y, LINF, seed=0)
    assert not bool(white.success.any())
    assert int(black.success.sum()) >= 10  # 11 of these 20 with v3's one 1000-query run (v2's 20 short ones: 12)


def _short(stage, steps):
    """The stage with fewer APGD steps (the order of targets and the draws stay as they are)."""
    from dataclasses import replace

    stage.untargeted.config = replace(stage.untargeted.config, steps=steps)
    stage.targeted.config = replace(stage.targeted.config, steps=steps)
    return stage


def test_the_clean_target_only_adds_to_what_the_first_ranks_break(committed_robust, points):
    """v4 = v3's ranks, drawn the same way, then the clean point's top class: per example, every
    point the stage without it breaks is broken at the same point by the same rank."""
    x, y = _clean_correct(committed_robust, points, 60)
    without = _short(GradientStage(TARGETS, BOUNDARY_TARGETS, 0), 8)
    with_clean = _short(GradientStage(TARGETS, BOUNDARY_TARGETS, CLEAN_TARGETS), 8)
    with committed_robust.attack_mode():
        before = without.run(committed_robust, x, y, LINF, seed=0)
        after = with_clean.run(committed_robust, x, y, LINF, seed=0)
    assert 0 < int(before.success.sum()) < x.shape[0]
    assert bool(after.success[before.success].all())
    assert torch.equal(after.x_adv[before.success], before.x_adv[before.success])
    assert [after.broken_by[i] for i in before.success.nonzero().squeeze(1).tolist()] == \
        [before.broken_by[i] for i in before.success.nonzero().squeeze(1).tolist()]


def test_the_sweep_breaks_what_the_full_length_targets_miss(fmnist_test):
    """ancra test point #460: aa (APGD-T over all 9 targets) breaks it, v4's six full-length target
    runs do not; it falls toward classes below its clean top two (4, 2 and 9: ranks 4, 6 and 9),
    which only the sweep attacks."""
    from defenses.training import checkpoints
    from tests.conftest import COMMITTED

    module, _ = checkpoints.load(COMMITTED / "ancra-smallcnn-ra.pt")
    model = ModelUnderTest(module, 10)
    x, y = fmnist_test.batch(slice(460, 461))
    assert SWEEP_TARGETS == 9 - CLEAN_TARGETS and SWEEP_STEPS < 100
    with model.attack_mode():
        assert model.predict(x).item() == y.item()
        full_length = GradientStage(TARGETS, BOUNDARY_TARGETS, CLEAN_TARGETS).run(model, x, y, LINF, seed=0)
        swept = TargetSweep(CLEAN_TARGETS, SWEEP_TARGETS, SWEEP_STEPS).run(model, x, y, LINF, seed=0)
        found = model.predict(swept.x_adv)
        clean_top = logit_ranked_targets(model, x)[0, :CLEAN_TARGETS].tolist()
    assert not bool(full_length.success.any())
    assert bool(swept.success.all()) and found.item() != y.item() and found.item() not in clean_top
    assert float((swept.x_adv - x).abs().max()) <= LINF.eps + 1e-6
