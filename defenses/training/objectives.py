"""Loss pieces shared by several defenses (TRADES' KL, MART's boosted CE, SupCon)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kl_divergence(natural_logits: torch.Tensor, adversarial_logits: torch.Tensor, reduction: str) -> torch.Tensor:
    """KL(p(x) ‖ p(x_adv)) with the natural branch not detached, from log-probabilities: with
    probabilities as the target, a class whose softmax underflows to 0 gives a NaN gradient
    (0 · log 0), which ended a full-budget TRADES run at epoch 3."""
    return F.kl_div(F.log_softmax(adversarial_logits, dim=1), F.log_softmax(natural_logits, dim=1),
                    reduction=reduction, log_target=True)


def trades_kl(natural_logits: torch.Tensor, adversarial_logits: torch.Tensor) -> torch.Tensor:
    """KL(p(x) ‖ p(x_adv)) averaged over the batch; the natural branch is not detached (TRADES)."""
    return kl_divergence(natural_logits, adversarial_logits, "batchmean")


def mart(natural_logits: torch.Tensor, adversarial_logits: torch.Tensor, y: torch.Tensor,
         beta: float) -> torch.Tensor:
    """MART: boosted CE on x_adv + β·KL(p(x) ‖ p(x_adv))·(1 − p_y(x)), per example, averaged."""
    adv_probs = F.softmax(adversarial_logits, dim=1)
    wrong = adv_probs.clone()
    wrong.scatter_(1, y[:, None], 0.0)
    boosted_ce = F.cross_entropy(adversarial_logits, y) - torch.log(1.0001 - wrong.max(1).values + 1e-12).mean()
    nat_probs = F.softmax(natural_logits, dim=1)
    true_prob = nat_probs.gather(1, y[:, None]).squeeze(1)
    kl = (nat_probs * (torch.log(nat_probs + 1e-12) - torch.log(adv_probs + 1e-12))).sum(1)
    return boosted_ce + beta * (kl * (1.0000001 - true_prob)).mean()


def supcon(features: torch.Tensor, labels: torch.Tensor, temperature: float = 0.07,
           base_temperature: float = 0.07) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al.), "all" mode.

    `features`: (batch, views, dim), L2-normalized; every same-label sample and view is a positive.
    """
    b, v, _ = features.shape
    flat = features.transpose(0, 1).reshape(b * v, -1)  # view-major, like torch.cat(unbind(dim=1))
    lab = labels.repeat(v)
    logits = flat @ flat.T / temperature
    self_mask = torch.eye(b * v, dtype=torch.bool, device=flat.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (lab[:, None] == lab[None, :]) & ~self_mask
    mean_log_prob = (log_prob.masked_fill(~positives, 0.0)).sum(1) / positives.sum(1).clamp_min(1)
    return -(temperature / base_temperature) * mean_log_prob.mean()
