"""`cw-l2`: the Carlini–Wagner L2 optimization attack (tanh box, Adam, binary search over c).

C&W is a minimum-norm attack; under a fixed-budget threat model an example counts as broken
only when the smallest adversarial perturbation found has ‖δ‖₂ ≤ ε.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.attacks.base import ATTACKS, Attack, AttackEntry, AttackOutput
from bench.attacks.losses import margin
from bench.loading.model import ModelUnderTest
from bench.threat import Norm, ThreatModel


@dataclass(frozen=True)
class CWL2Config:
    binary_steps: int = 9
    steps: int = 100
    lr: float = 0.01
    initial_const: float = 1e-3
    confidence: float = 0.0

    def __post_init__(self) -> None:
        if self.binary_steps < 1 or self.steps < 1:
            raise ValueError("binary_steps and steps must be at least 1")


def _to_tanh_space(x: torch.Tensor) -> torch.Tensor:
    return torch.atanh((x * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6))


class CarliniWagnerL2(Attack[CWL2Config]):
    def run(self, model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor,
            threat: ThreatModel, seed: int) -> AttackOutput:
        cfg = self.config
        n = x.shape[0]
        w0 = _to_tanh_space(x)
        const = torch.full((n,), cfg.initial_const, device=x.device)
        lower = torch.zeros(n, device=x.device)
        upper = torch.full((n,), float("inf"), device=x.device)
        best_norm = torch.full((n,), float("inf"), device=x.device)
        best_adv = x.clone()
        for _ in range(cfg.binary_steps):
            w = w0.clone().requires_grad_(True)
            optimizer = torch.optim.Adam([w], lr=cfg.lr)
            succeeded = torch.zeros(n, dtype=torch.bool, device=x.device)
            for _ in range(cfg.steps):
                x_adv = (torch.tanh(w) + 1) / 2
                logits = model(x_adv)
                dist = (x_adv - x).flatten(1).pow(2).sum(1)
                # margin() is max_{j≠y} z_j − z_y; C&W minimizes max(z_y − max_{j≠y} z_j, −κ)
                f = (-margin(logits, y)).clamp_min(-cfg.confidence)
                loss = (dist + const * f).sum()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    wrong = logits.argmax(1) != y
                    l2 = dist.sqrt()
                    better = wrong & (l2 < best_norm)
                    best_norm[better] = l2[better]
                    best_adv[better] = x_adv.detach()[better]
                    succeeded |= wrong
            with torch.no_grad():
                upper = torch.where(succeeded, torch.minimum(upper, const), upper)
                lower = torch.where(succeeded, lower, torch.maximum(lower, const))
                const = torch.where(torch.isinf(upper), const * 10, (lower + upper) / 2)
        success = best_norm <= threat.eps
        x_out = torch.where(success.view(-1, *[1] * (x.ndim - 1)), best_adv, x)
        return AttackOutput(x_out.detach(), success)


ATTACKS.add("cw-l2", AttackEntry(
    "Carlini–Wagner L2 (Adam, 9 binary-search steps × 100 iterations); success iff ‖δ‖₂ ≤ ε",
    CWL2Config, lambda cfg: CarliniWagnerL2("cw-l2", 1, cfg), norms=(Norm.L2,)))
