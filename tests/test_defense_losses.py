"""Each defense's loss pieces on hand-built inputs, against values computed by hand."""

import math

import pytest
import torch
import torch.nn.functional as F

from bench.data import DATASETS
from defenses.afd import fold
from defenses.ancra import asymmetric_contrast, pick_negatives, same_class_overlap
from defenses.ascl import selected_contrast, selection_masks
from defenses.nets.archs import ARCHS, CosineLinear
from defenses.nets.reverse_attention import RAClassifier
from defenses.spat import reweighted_kl, self_paced_logits
from defenses.training.objectives import supcon, trades_kl

FMNIST = DATASETS.get("fashion-mnist")
CIFAR = DATASETS.get("cifar10")


def test_anc_term_is_zero_when_anchor_and_negative_are_predicted_differently():
    anchor = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    negative = torch.tensor([[0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    assert same_class_overlap(anchor, negative) == 0


def test_anc_gradient_reaches_only_the_negative_when_alpha_is_one():
    anchor = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]], requires_grad=True)
    negative = torch.tensor([[0.6, 0.3, 0.1], [0.5, 0.4, 0.1]], requires_grad=True)
    value = asymmetric_contrast(anchor, negative, alpha=1.0)
    value.backward()
    # Only the first pair shares the predicted class: (1/2)·sqrt(0.7·0.6).
    assert value.item() == pytest.approx(0.5 * math.sqrt(0.42), rel=1e-5)
    assert torch.all(anchor.grad == 0)
    expected = 0.5 * 0.5 * math.sqrt(0.7 / 0.6)  # d/dq of (1/2)·sqrt(0.7·q) at q = 0.6
    assert negative.grad[0, 0].item() == pytest.approx(expected, rel=1e-4)
    assert torch.count_nonzero(negative.grad) == 1


def test_negatives_are_other_class_samples_from_the_batch():
    y = torch.tensor([0, 0, 1, 2, 2, 1, 0])
    idx = pick_negatives(y, torch.Generator().manual_seed(0))
    assert torch.all(y[idx] != y)
    assert torch.all(pick_negatives(torch.tensor([3, 3]), torch.Generator()) == -1)


def _hand_ra(model: RAClassifier, x: torch.Tensor, masks: list[torch.Tensor] | None) -> torch.Tensor:
    """SmallCNN-RA by hand: two hidden fc blocks, each re-weighted by a class row of the head."""
    net = model.net
    w, b = net.head.weight, net.head.bias
    h = net.trunk(x)
    for i, block in enumerate(net.last_blocks()):
        z = block(h)
        j = masks[i] if masks is not None else (z @ w.T + b).argmax(1)
        h = z * w[j]
    return h @ w.T + b


def test_reverse_attention_masks_by_label_in_training_and_by_prediction_in_eval():
    torch.manual_seed(0)
    model = ARCHS.get("smallcnn-ra")(FMNIST)
    x, y = torch.rand(6, 1, 28, 28), torch.tensor([0, 1, 2, 3, 4, 5])
    model.train()
    trained, aux = model.forward_all(x, y)
    assert torch.allclose(trained, _hand_ra(model, x, [y, y]), atol=1e-5) and len(aux) == 2
    model.eval()
    deployed, _ = model.forward_all(x, y)  # labels are ignored in eval mode
    assert torch.allclose(deployed, _hand_ra(model, x, None), atol=1e-5)
    assert torch.allclose(model(x), deployed)
    assert not torch.allclose(deployed, trained)


@pytest.mark.parametrize("arch", ["resnet18-ra", "preactresnet18-ra", "wrn-28-10-ra", "wrn-34-10-ra"])
def test_reverse_attention_works_on_every_paper_architecture(arch):
    model = ARCHS.get(arch)(CIFAR).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        logits, aux = model.forward_all(x)
    assert logits.shape == (2, 10) and len(aux) == 2 and all(a.shape == (2, 10) for a in aux)


def test_afd_folded_export_gives_the_unfolded_logits():
    torch.manual_seed(0)
    model = ARCHS.get("smallcnn")(FMNIST).eval()
    d1 = torch.nn.Linear(200, 200, bias=False)
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        unfolded = model.head(d1(model.embed(x)))
        folded = fold(model, d1)(x)
    assert torch.allclose(folded, unfolded, atol=1e-5)
    assert type(fold(model, d1)) is type(model)  # a plain classifier: loads into the registered arch


def test_ascl_masks_match_a_hand_computed_example():
    labels = torch.tensor([0, 0, 1, 1])
    preds = torch.tensor([0, 1, 0, 1])
    positives, negatives = selection_masks(labels, preds)
    # Positives: same label and same prediction, not itself → nobody here.
    assert not positives.any()
    # Negatives: other label, same prediction → (0,2), (2,0), (1,3), (3,1).
    expected = torch.zeros(4, 4, dtype=torch.bool)
    for i, j in ((0, 2), (2, 0), (1, 3), (3, 1)):
        expected[i, j] = True
    assert torch.equal(negatives, expected)
    positives, _ = selection_masks(torch.tensor([0, 0, 0]), torch.tensor([0, 0, 1]))
    assert positives.tolist() == [[False, True, False], [True, False, False], [False, False, False]]


def test_ascl_contrast_uses_linf_distances_over_selected_pairs():
    h = torch.tensor([[0.0, 0.0], [0.3, 0.1], [1.0, 0.0]])
    labels, preds = torch.tensor([0, 0, 1]), torch.tensor([0, 0, 0])
    tau = 0.5
    # Anchor 0: positive 1 (d∞ 0.3), negative 2 (d∞ 1.0). Anchor 1: positive 0, negative 2 (d∞ 0.7).
    # Anchor 2 has no positive and contributes 0.
    l0 = -math.log(math.exp(-0.3 / tau) / (math.exp(-0.3 / tau) + math.exp(-1.0 / tau)))
    l1 = -math.log(math.exp(-0.3 / tau) / (math.exp(-0.3 / tau) + math.exp(-0.7 / tau)))
    assert selected_contrast(h, labels, preds, tau).item() == pytest.approx((l0 + l1) / 3, rel=1e-5)


def test_spat_reweighting_matches_a_hand_computed_value():
    cos_nat, cos_adv = torch.tensor([[0.5, -0.5]]), torch.tensor([[0.0, 0.25]])
    s, n = 2.0, 0.2
    p = [math.exp(1) / (math.exp(1) + math.exp(-1)), math.exp(-1) / (math.exp(1) + math.exp(-1))]
    q = [math.exp(0) / (math.exp(0) + math.exp(0.5)), math.exp(0.5) / (math.exp(0) + math.exp(0.5))]
    k = [p[j] * (math.log(p[j]) - math.log(q[j])) for j in range(2)]
    expected = sum(kj * (kj + n) for kj in k)
    assert reweighted_kl(cos_nat, cos_adv, s, n).item() == pytest.approx(expected, rel=1e-5)


def test_spat_self_paced_logits_match_the_formula():
    cos, y = torch.tensor([[0.5, 0.2, -0.1]]), torch.tensor([0])
    got = self_paced_logits(cos, y, scale=8.0, m=0.2)
    expected = [8 * (1.2 - 0.5) * 0.5, 8 * (0.2 + 0.2) * 0.2, 8 * (-0.1 + 0.2) * -0.1]
    assert got[0].tolist() == pytest.approx(expected, rel=1e-6)


def test_cosine_head_normalizes_without_touching_its_weights_and_exposes_the_scale():
    head = CosineLinear(4, 3, scale=8.0)
    before = head.weight.detach().clone()
    f = torch.randn(2, 4)
    unscaled = head(f)
    assert torch.equal(head.weight, before)
    assert unscaled.abs().max() <= 1 + head.bias.abs().max() + 1e-6
    head.scaled = True
    assert torch.allclose(head(f), 8.0 * unscaled)


def test_supcon_counts_the_adversarial_view_as_a_positive():
    """Two samples of different classes, three views each (two strong views + the adversarial one):
    the loss falls when the adversarial view moves onto its own sample's views, so it is a positive."""
    a, b = F.normalize(torch.tensor([1.0, 0.0]), dim=0), F.normalize(torch.tensor([0.0, 1.0]), dim=0)
    labels = torch.tensor([0, 1])

    def loss_with_adversarial(adv_a: torch.Tensor) -> float:
        feats = torch.stack([torch.stack([a, a, adv_a]), torch.stack([b, b, b])])
        return supcon(feats, labels).item()

    assert loss_with_adversarial(a) < loss_with_adversarial(F.normalize(torch.tensor([1.0, 1.0]), dim=0))
    assert loss_with_adversarial(a) < loss_with_adversarial(b)


def test_the_trades_kl_keeps_finite_gradients_when_the_natural_softmax_underflows():
    """KL(p(x) ‖ p(x_adv)) with p(x) as probabilities has a NaN gradient once a class's softmax is
    exactly 0 (0 · log 0): what ended a full-budget TRADES run. From log-probabilities it is finite,
    and the value is the textbook sum."""
    natural = torch.tensor([[120.0, 0.0, -30.0, 5.0]], requires_grad=True)  # exp(-120) underflows in fp32
    adversarial = torch.tensor([[1.0, 2.0, 0.5, -1.0]], requires_grad=True)
    assert (F.softmax(natural, dim=1) == 0).any()
    old = F.kl_div(F.log_softmax(adversarial, dim=1), F.softmax(natural, dim=1), reduction="batchmean")
    assert not torch.isfinite(torch.autograd.grad(old, natural)[0]).all()  # the bug, as it was
    new = trades_kl(natural, adversarial)
    new.backward()
    assert torch.isfinite(natural.grad).all() and torch.isfinite(adversarial.grad).all()
    p, log_p, log_q = F.softmax(natural, 1), F.log_softmax(natural, 1), F.log_softmax(adversarial, 1)
    assert math.isclose(float(new), float((p * (log_p - log_q)).sum()), rel_tol=1e-6)
