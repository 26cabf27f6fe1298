"""`external:FILE`: adversarial examples someone else found, re-checked as an attack's output.

The file is in the `bench-adv` format (`bench.records.adversarials`). Each clean point gets the file's
example that lies within ε of it (matched by distance, so the attack needs no test-set indices and
runs under cascades, shards and resumes like any other); the harness then verifies every claimed
success in fp32, as for our own attacks. A point with no example within ε is refused: an external
evaluation counts only on the points it covers, which is what `bench verify-adv` runs it on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from bench.attacks.base import ATTACKS, Attack, AttackContext, AttackEntry, AttackOutput, Role
from bench.errors import BenchError
from bench.files import sha256_file
from bench.loading.model import ModelUnderTest
from bench.norms import distance
from bench.records import adversarials
from bench.threat import ThreatModel
from bench.verify import TOLERANCE

MATCH_CHUNK = 256


@dataclass(frozen=True)
class ExternalConfig:
    file: str = ""
    name: str = ""  # the label is external:NAME (default: the file name up to its first dot)
    source: str = ""  # where the file comes from (a URL), kept in the record
    sha256: str = ""  # the file's, checked when given (`bench verify-adv` always gives it)

    def __post_init__(self) -> None:
        if not self.file:
            raise ValueError("give the file: external:PATH")


class External(Attack[ExternalConfig]):
    batch_independent = True
    forward_only = True

    def bind(self, context: AttackContext) -> None:
        path = Path(self.config.file)
        self.examples = adversarials.read(path, test_size=None)
        if self.config.sha256 and sha256_file(path) != self.config.sha256:
            raise BenchError(f"{path}: sha256 {sha256_file(path)[:12]}…, not the {self.config.sha256[:12]}… given")
        if context.dataset is not None and self.examples.dataset != context.dataset:
            raise BenchError(f"{path}: adversarial examples for {self.examples.dataset}, not {context.dataset}")
        self.label = f"external:{self.config.name or path.name.split('.')[0]}"

    def run(self, model: ModelUnderTest, x: torch.Tensor, y: torch.Tensor,
            threat: ThreatModel, seed: int) -> AttackOutput:
        claimed = self.examples.threat
        if claimed.norm is not threat.norm or claimed.eps > threat.eps + TOLERANCE:
            raise BenchError(f"{self.config.file}: adversarial examples for {claimed.label}, not {threat.label}")
        pool = self.examples.x_adv.to(x.device)
        x_adv = x.clone()
        for start in range(0, x.shape[0], MATCH_CHUNK):
            rows = x[start:start + MATCH_CHUNK]
            d = torch.stack([distance(threat.norm, pool, row.expand_as(pool)) for row in rows])
            near, which = d.min(1)
            missing = near > threat.eps + TOLERANCE
            if bool(missing.any()):
                raise BenchError(f"{self.config.file} has no adversarial example within ε of {int(missing.sum())} "
                                 "of the points evaluated: run it on its own points with bench verify-adv")
            x_adv[start:start + MATCH_CHUNK] = pool[which]
        with torch.no_grad():
            success = model(x_adv).argmax(1) != y
        return AttackOutput(x_adv, success)


EXTERNAL = "external"  # an evaluation someone else ran: each file is its own evidence, whatever its parameters

ATTACKS.add(EXTERNAL, AttackEntry(
    "adversarial examples from a file (bench-adv format; external:PATH,name=NAME,source=URL), re-verified; "
    "`bench verify-adv` runs it on the file's points", ExternalConfig, lambda cfg: External(EXTERNAL, 1, cfg),
    positional="file", roles=frozenset({Role.EXTERNAL})))
