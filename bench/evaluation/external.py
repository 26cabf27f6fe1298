"""`bench verify-adv`: an external evaluation's adversarial examples, verified and recorded.

RobustBench ranks by the best known robust accuracy, external evaluations included, but nothing
re-checks the files of adversarial images those evaluations link. Here a file in the `bench-adv`
format (`bench.records.adversarials`) is tied to its test points (every example inside the ε-ball of its own
clean point and in [0, 1], or the file is refused naming the first that is not), then run through
the harness as the attack `external:NAME` on exactly its points: every success is re-verified in
fp32 and the record counts in the worst case and the leaderboard like any other.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bench import data
from bench.attacks.external import EXTERNAL
from bench.attacks.specs import POSITIONAL, AttackSpec
from bench.errors import BenchError
from bench.evaluation.config import RunConfig
from bench.evaluation.harness import RunResult, evaluate_on
from bench.evaluation.resolve import resolve_model
from bench.files import sha256_file
from bench.records import adversarials
from bench.threat import ThreatModel

RESERVED = (",", "=")  # the attack-list syntax: a path holding them cannot be named in external:PATH


def verify_adversarials(cfg: RunConfig, path: Path, *, name: str | None = None, source: str | None = None,
                        threat: ThreatModel | None = None) -> RunResult:
    """`threat`: what the caller asked for (refused unless it is the file's); None takes the file's."""
    if any(c in str(path) for c in RESERVED):
        raise BenchError(f"{path}: a path with ',' or '=' cannot be named in an attack list; rename the file")
    for text, what in ((name, "--name"), (source, "--source")):
        if text is not None and (not text or any(c in text for c in RESERVED)):
            raise BenchError(f"{what} {text!r} must be non-empty without ',' or '='")
    test = data.load(cfg.dataset, data.Split.TEST, cfg.data_dir)
    found = adversarials.read(path, len(test))
    if found.dataset != cfg.dataset:
        raise BenchError(f"{path}: adversarial examples for {found.dataset}, not {cfg.dataset} (give --dataset)")
    if threat is not None and threat != found.threat:
        raise BenchError(f"{path}: adversarial examples for {found.threat.label}, not {threat.label}")
    x, y = test.batch(found.index)
    found.check_against(x)
    params = [(k, v) for k, v in (("name", name), ("source", source), ("sha256", sha256_file(path))) if v]
    spec = AttackSpec(EXTERNAL, ((POSITIONAL, str(path)), *params))
    run = dataclasses.replace(cfg, threat=found.threat, attack_specs=(spec,),
                              selection=f"the points of {path.name}", n=None, sample_seed=None)
    attacks = run.attacks()
    resolved = resolve_model(run)
    return evaluate_on(run, attacks, resolved, x, y, found.index, data.DATASETS.get(run.dataset).num_classes)
