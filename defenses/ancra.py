"""ANCRA (arXiv:2310.03358): asymmetric negative contrast + reverse attention, three loss flavours.

Per batch: a negative x^o of another class from the same batch for every anchor, pushed towards
the anchor's class by a targeted descent (the "adversarial negative"); an untargeted CE attack on
final + auxiliary logits; then train-mode forwards masked by ground truth (x and x_adv by y,
x^o by its own label). The ANC term penalizes anchor and negative being predicted as the same
class, with the gradient reaching only the negative when α = 1.

`ancra` is the released TRADES variant; `ancra-pgd` and `ancra-mart` are the README's other two,
whose code is not released: their losses follow our reading (docs/design.md, ANCRA, "Unreleased variants").
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from defenses.nets.reverse_attention import RA_NEEDS, RAClassifier
from defenses.training.method import Method, Start, TrainContext, eval_mode, perturb, recipe_attack
from defenses.training.objectives import mart, trades_kl
from defenses.training.recipes import STEP_0007, cifar, fmnist_cpu, per_cifar
from defenses.training.registry import DEFENSES, Defense, Recipe


class Flavour(str, enum.Enum):
    TRADES = "trades"
    PGD = "pgd"
    MART = "mart"


@dataclass(frozen=True)
class AncraParams:
    aux_weight: float = 2.0  # λ_aux ("cr_beta"): weight of the auxiliary-logit terms
    beta: float = 6.0  # TRADES β (MART β for ancra-mart); unused by ancra-pgd
    zeta: float = 3.0  # weight of the ANC term
    alpha: float = 1.0  # asymmetry: 1 = only the negative's probability is pushed down


def pick_negatives(y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """For each anchor, a random sample of a random other class present in the batch (-1: none)."""
    labels = y.tolist()
    by_class: dict[int, list[int]] = {}
    for i, c in enumerate(labels):
        by_class.setdefault(c, []).append(i)
    classes = sorted(by_class)
    out = []
    for c in labels:
        others = [k for k in classes if k != c]
        if not others:
            out.append(-1)
            continue
        k = others[int(torch.randint(len(others), (1,), generator=gen))]
        members = by_class[k]
        out.append(members[int(torch.randint(len(members), (1,), generator=gen))])
    return torch.tensor(out, dtype=torch.long, device=y.device)


def same_class_overlap(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """S(p, q) = mean_i 1[argmax p_i = argmax q_i]·sqrt(max p_i · max q_i)."""
    p_max, p_arg = p.max(1)
    q_max, q_arg = q.max(1)
    return ((p_arg == q_arg).float() * torch.sqrt(p_max * q_max + 1e-12)).mean()


def asymmetric_contrast(p: torch.Tensor, q: torch.Tensor, alpha: float) -> torch.Tensor:
    """S_α(p, q) = α·S(sg(p), q) + (1 − α)·S(p, sg(q)): α = 1 moves only the negative q."""
    return alpha * same_class_overlap(p.detach(), q) + (1 - alpha) * same_class_overlap(p, q.detach())


class Ancra(Method):
    flavour = Flavour.TRADES

    def __init__(self, model: nn.Module, recipe: Recipe, hp: AncraParams, ctx: TrainContext) -> None:
        super().__init__(model, recipe, hp, ctx)
        if not isinstance(model, RAClassifier):
            raise TypeError(f"ANCRA needs a reverse-attention architecture (e.g. smallcnn-ra, resnet18-ra), "
                            f"not {type(self.model).__name__}")

    @property
    def ra(self) -> RAClassifier:
        assert isinstance(self.model, RAClassifier)
        return self.model

    def _attack_objective(self, y: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """CE on final + mean auxiliary logits, summed over the batch (the authors' u_pgd/t_pgd loss)."""
        lam = self.hp.aux_weight

        def objective(xa: torch.Tensor) -> torch.Tensor:
            final, aux = self.ra.forward_all(xa)
            per = F.cross_entropy(final, y, reduction="none")
            per = per + lam * torch.stack([F.cross_entropy(a, y, reduction="none") for a in aux]).mean(0)
            return per.sum()

        return objective

    def loss(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, epoch: int) -> torch.Tensor:
        hp, model = self.hp, self.ra
        neg_idx = pick_negatives(y, gen)
        has_neg = neg_idx >= 0
        with eval_mode(model):
            x_adv = perturb(self._attack_objective(y), x, start=Start.GAUSSIAN, gen=gen,
                            **recipe_attack(self.recipe))
            x_neg = x_adv[:0]
            if has_neg.any():
                # The negative moves towards the anchor's class: descent on CE with the anchor's label.
                x_neg = perturb(self._attack_objective(y[has_neg]), x[neg_idx[has_neg]], start=Start.GAUSSIAN,
                                gen=gen, descend=True, **recipe_attack(self.recipe))
        nat, nat_aux = model.forward_all(x, y)
        adv, adv_aux = model.forward_all(x_adv, y)
        lam = hp.aux_weight

        def mean_aux(fn: Callable[..., torch.Tensor], *pairs: list[torch.Tensor]) -> torch.Tensor:
            return torch.stack([fn(*args) for args in zip(*pairs, strict=True)]).mean()

        if self.flavour is Flavour.TRADES:
            total = F.cross_entropy(nat, y) + lam * mean_aux(lambda a: F.cross_entropy(a, y), nat_aux)
            total = total + hp.beta * (trades_kl(nat, adv) + lam * mean_aux(trades_kl, nat_aux, adv_aux))
        elif self.flavour is Flavour.PGD:
            total = F.cross_entropy(adv, y) + lam * mean_aux(lambda a: F.cross_entropy(a, y), adv_aux)
        else:
            total = mart(nat, adv, y, hp.beta) + lam * mean_aux(lambda n, a: mart(n, a, y, hp.beta),
                                                                 nat_aux, adv_aux)
        if has_neg.any():
            neg, neg_aux = model.forward_all(x_neg, y[neg_idx[has_neg]])
            anchor = F.softmax(nat[has_neg], dim=1)
            anc = asymmetric_contrast(anchor, F.softmax(neg, dim=1), hp.alpha)
            anc = anc + lam * mean_aux(
                lambda a, n: asymmetric_contrast(F.softmax(a[has_neg], dim=1), F.softmax(n, dim=1), hp.alpha),
                nat_aux, neg_aux)
            total = total + hp.zeta * anc
        return total

    def describe(self) -> dict[str, object]:
        return {"deployed_mask": "argmax of each RA block's auxiliary logits (hard, not differentiable)",
                "training_mask": "ground-truth label (negatives: their own label)",
                "negatives": "random_adv: a random sample of another class in the batch, targeted descent"}


class AncraPGD(Ancra):
    flavour = Flavour.PGD


class AncraMART(Ancra):
    flavour = Flavour.MART


# Released recipe for every CIFAR arch: SGD lr 0.01, wd 2e-4, 120 epochs, ×0.1 at 75, 90 and 100.
_CIFAR = cifar("resnet18-ra", 120, lr=0.01, weight_decay=2e-4, milestones=(75, 90, 100),
               attack_rel_step=STEP_0007)
_PAPER = "arXiv:2310.03358"
# docs/design.md (ANCRA, "Inference"): the authors' training attack on final + auxiliary logits, APGD on the first
# RA block's auxiliary logits, and a soft-mask backward through the hard argmax (BPDA-style)
RA_ADAPTIVE = ("ra-sum", "ra-aux", "ra-bpda")

DEFENSES.add("ancra", Defense(
    name="ancra", published=True, arch_needs=RA_NEEDS, paper=_PAPER, method=Ancra, params=AncraParams,
    summary="ANCRA on TRADES (released variant): reverse attention + asymmetric negative contrast",
    recipes=per_cifar(_CIFAR, fmnist_cpu("smallcnn-ra")),
    variant="TRADES flavour (released code): CE + β·KL, aux terms λ=2, ζ·ANC, CE inner attack",
    adaptive_attacks=RA_ADAPTIVE,
))
DEFENSES.add("ancra-pgd", Defense(
    name="ancra-pgd", published=True, arch_needs=RA_NEEDS, paper=_PAPER, method=AncraPGD, params=AncraParams,
    summary="ANCRA on PGD-AT: adversarial CE (+aux) + ζ·ANC (code not released; our reading)",
    recipes=per_cifar(_CIFAR, fmnist_cpu("smallcnn-ra")),
    variant="PGD flavour (unreleased): CE(f(x_adv)) + λ·aux CE + ζ·ANC",
    adaptive_attacks=RA_ADAPTIVE,
))
DEFENSES.add("ancra-mart", Defense(
    name="ancra-mart", published=True, arch_needs=RA_NEEDS, paper=_PAPER, method=AncraMART, params=AncraParams,
    summary="ANCRA on MART (β = 5): MART on final and aux logits + ζ·ANC (code not released; our reading)",
    recipes={k: r.replace(params={"beta": 5.0}) for k, r in per_cifar(_CIFAR, fmnist_cpu("smallcnn-ra")).items()},
    variant="MART flavour (unreleased): MART(final) + λ·MART(aux) + ζ·ANC",
    adaptive_attacks=RA_ADAPTIVE,
))
