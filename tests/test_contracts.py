"""Every registered attack, on a small model it must break: it runs through the harness (or, if
its threat or the model's structure rules it out, refuses in one line), stays inside the ε-ball
and [0, 1], and breaks what an undefended CNN leaves. New attacks are covered without a line here."""

import pytest
import torch

import bench
from bench.attacks import ATTACKS
from bench.errors import BenchError
from bench.threat import Norm
from defenses import DEFENSES

STRUCTURE_SPECIFIC = {a for _, d in DEFENSES.items() for a in d.adaptive_attacks} - {"transfer", "square-long"}
EPS = {Norm.LINF: 0.1, Norm.L2: 1.5}
# a transfer attack is as strong as its surrogate: from the model itself it is white-box PGD-50
# (from pgd-at it breaks 1 of these 6 points)
SPEC = {"transfer": "transfer:standard"}
# random noise is the baseline real attacks must beat: weak by design (on the first 90 clean-correct
# points it breaks 48 of this CNN's, 1 of these 6)
BASELINES = {"noise"}


@pytest.fixture(scope="module")
def natural_points(fmnist_test):
    natural = bench.load("standard")
    x, y = fmnist_test.batch(slice(0, 40))
    keep = natural.module(x).argmax(1) == y
    return natural, x[keep][:6], y[keep][:6]


@pytest.fixture(scope="module")
def adversarial_file(natural_points, tmp_path_factory):
    """What `external:FILE` reads: PGD's examples for the six points, in the bench-adv format."""
    natural, x, y = natural_points
    out = bench.attack(natural, x, y, "pgd", eps=0.1, norm="linf")
    path = tmp_path_factory.mktemp("external") / "pgd.adv.pt"
    torch.save({"format": "bench-adv", "version": 1, "dataset": "fashion-mnist", "split": "test", "norm": "linf",
                "eps": 0.1, "index": torch.arange(6), "x_adv": out.x_adv}, path)
    return path


@pytest.mark.parametrize("name", ATTACKS.names())
def test_every_registered_attack_honours_the_contract(name, natural_points, adversarial_file):
    natural, x, y = natural_points
    norm = ATTACKS.get(name).norms[0]
    spec = f"external:{adversarial_file}" if name == "external" else SPEC.get(name, name)
    try:
        out = bench.attack(natural, x, y, spec, eps=EPS[norm], norm=norm.value)
    except BenchError as refusal:
        assert name in STRUCTURE_SPECIFIC, f"{name} refused a plain CNN: {refusal}"
        assert "\n" not in str(refusal)
        return
    assert name not in STRUCTURE_SPECIFIC, f"{name} ran on a model without its structure"
    assert out.x_adv.shape == x.shape and out.success.dtype == torch.bool and bool(out.clean_correct.all())
    delta = (out.x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm is Norm.LINF else delta.norm(dim=1)
    assert bool((size <= EPS[norm] + 1e-5).all()) and 0 <= float(out.x_adv.min()) <= float(out.x_adv.max()) <= 1
    needed = 1 if name in BASELINES else 3
    assert int(out.success.sum()) >= needed, f"{name} broke {int(out.success.sum())} of 6 points of an undefended CNN"
