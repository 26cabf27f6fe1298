"""Independent re-check of every success an attack claims, in fp32 and eval mode."""

from __future__ import annotations

import torch

from bench.attacks.norms import distance
from bench.errors import VerificationError
from bench.model import ModelUnderTest
from bench.threat import ThreatModel

TOLERANCE = 1e-5  # float slack on the ε-ball and the [0,1] box


def verify_successes(model: ModelUnderTest, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                     success: torch.Tensor, threat: ThreatModel, attack: str) -> None:
    """Raise if a claimed success is outside the ε-ball, outside [0,1] or still classified as y."""
    if not bool(success.any()):
        return
    idx = success.nonzero().squeeze(1)
    xa, x0, y0 = x_adv[idx].float(), x[idx].float(), y[idx]
    dist = distance(threat.norm, xa, x0)
    problems = []
    if bool((dist > threat.eps + TOLERANCE).any()):
        problems.append(f"{int((dist > threat.eps + TOLERANCE).sum())} outside the ε-ball "
                        f"(max {threat.norm.value} distance {float(dist.max()):.6f} > ε={threat.eps:.6f})")
    if bool((xa < -TOLERANCE).any() or (xa > 1 + TOLERANCE).any()) or not bool(torch.isfinite(xa).all()):
        problems.append("inputs outside [0, 1] or not finite")
    still_correct = model.predict(xa) == y0.cpu()
    if bool(still_correct.any()):
        problems.append(f"{int(still_correct.sum())} still classified correctly")
    if problems:
        raise VerificationError(f"attack {attack} claimed {len(idx)} successes that fail verification: "
                                + "; ".join(problems) + ". This is a bug in the attack; no number is reported.")
