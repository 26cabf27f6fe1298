"""Independent re-check of every success an attack claims, in IEEE fp32, eager and eval mode."""

from __future__ import annotations

import torch

from bench.errors import VerificationError
from bench.loading.model import ModelUnderTest
from bench.norms import distance
from bench.threat import ThreatModel

TOLERANCE = 1e-5  # float slack on the ε-ball and the [0,1] box
# A claimed success whose reference margin (z_y − max_{j≠y} z_j) is at most this is a point on the
# decision boundary whose side depends on summation order (batch size, kernel choice): counted
# robust, not a bug. This CPU moves logits by ~1.4e-6 with the batch size.
BOUNDARY_NOISE = 1e-4


def verify_successes(model: ModelUnderTest, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                     success: torch.Tensor, threat: ThreatModel, attack: str) -> torch.Tensor:
    """The claimed successes that hold in the reference arithmetic (a mask like `success`).

    Raise if a claim is outside the ε-ball or [0,1], or, when the attack ran in the reference
    arithmetic itself, if the point is still classified correctly by more than float noise. A
    claim made in other arithmetic (tf32, bf16, fp16, compiled), or on a randomized model (allowed
    with --allow-randomized; a fresh draw may decide otherwise), that does not hold in fp32 is
    dropped: the caller records the point as robust under this attack."""
    if not bool(success.any()):
        return success
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
    if bool(still_correct.any()) and model.reference_arithmetic and not model.randomized:
        margins = model.true_class_margin(xa[still_correct.to(xa.device)], y0[still_correct.to(y0.device)])
        if bool((margins > BOUNDARY_NOISE).any()):
            problems.append(f"{int((margins > BOUNDARY_NOISE).sum())} still classified correctly")
    if problems:
        raise VerificationError(f"attack {attack} claimed {len(idx)} successes that fail verification: "
                                + "; ".join(problems) + ". This is a bug in the attack; no number is reported.")
    held = success.clone()
    held[idx[still_correct.to(idx.device)]] = False
    return held
