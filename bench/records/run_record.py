"""A run record as typed values, read once from its validated JSON.

The JSON file stays the source of truth (`bench.records.schema` upgrades old versions and refuses invalid
ones with the file's name); `RunRecord.of` turns what it returns into frozen dataclasses and
per-example arrays, so a reader asks `record.attacks["pgd"].robust.count` instead of indexing
strings. Everything that reads records reads them this way: the results table, the leaderboard and
its curves and sanity checks, the audit, the sweep planner, the gate and the Python API. Only
`bench.records.schema` and `bench.records.rules` (which validate the JSON) see the dicts: the harness
fills a `RunRecord` and `RunRecord.to_json` writes it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.records.schema import WORST_CASE, RunPurpose, load_records
from bench.stats import Proportion
from bench.threat import Norm, ThreatModel


def _flags(bits: str) -> np.ndarray:
    return np.frombuffer(bits.encode(), dtype=np.uint8) == ord("1")


def flag_text(flags: np.ndarray) -> str:
    """Per-point flags as records and gate baselines store them: one '1' or '0' per point."""
    return "".join("1" if f else "0" for f in flags.tolist())


@dataclass(frozen=True)
class AttackResult:
    label: str  # the attack as the run named it (e.g. "pgd:steps=50")
    attack: str  # the registered attack
    protocol: str  # attack/version
    config: Mapping[str, Any]
    robust: Proportion
    seconds: float
    forward_per_example: float
    backward_per_example: float
    adaptive: bool
    flags: np.ndarray  # bool [n]: robust to this attack (cumulative in a cascade's record)
    stages: tuple[str | None, ...]  # the attack's components in the order they ran (AutoAttack's, aa-fast's)
    warnings: tuple[str, ...]  # what the attack itself warned of (AutoAttack's checks)
    margins: tuple[float | None, ...] | None  # true-class margin at the attack's output point, per point
    forward: int | None = None  # passes in all (absent from the earliest records)
    backward: int | None = None
    stage_cost: Mapping[str, Any] | None = None  # per stage: seconds, passes, points (absent before schema 2's)

    def to_json(self) -> dict[str, Any]:
        passes: dict[str, Any] = {"forward_per_example": self.forward_per_example,
                                  "backward_per_example": self.backward_per_example}
        if self.forward is not None and self.backward is not None:
            passes = {"forward": self.forward, "backward": self.backward, **passes}
        return {"robust_accuracy": self.robust.value, "count": self.robust.count, "ci95": list(self.robust.interval),
                "attack": self.attack, "protocol": self.protocol, "adaptive": self.adaptive,
                "config": dict(self.config), "stages": list(self.stages),
                **({"stage_cost": dict(self.stage_cost)} if self.stage_cost is not None else {}),
                "seconds": self.seconds, "passes": passes, "warnings": list(self.warnings)}


@dataclass(frozen=True)
class CertifiedResult:
    """One verifier's outcome per point (`bench certify`): certified robust, refuted (a misclassified
    point of the ball, found and checked), or neither. Bounding methods refute only misclassified clean
    points; an exact method decides every point it finishes."""

    method: str
    exact: bool
    certified: Proportion
    flags: np.ndarray  # bool [n]: proven robust
    refuted: np.ndarray  # bool [n]: proven not robust
    margins: tuple[float | None, ...]  # proven minimum margin, the found point's, or the best bound (None: none)
    seconds: float
    config: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "exact": self.exact, "certified_accuracy": self.certified.value,
                "count": self.certified.count, "ci95": list(self.certified.interval),
                "refuted": int(self.refuted.sum()), "seconds": self.seconds, "config": dict(self.config)}


def finite_or_none(values: np.ndarray, decimals: int) -> tuple[float | None, ...]:
    """Per-point numbers as records store them: rounded, and None where there is no finite value."""
    return tuple(round(float(v), decimals) if math.isfinite(v) else None for v in values.tolist())


@dataclass(frozen=True)
class ModelInfo:
    label: str
    path: str
    sha256: str
    defense: str | None
    variant: str | None
    arch: str | None
    input: str | None  # what the model takes (pixel range, where normalization happens)
    training_budget: Mapping[str, Any] | None  # the sidecar's training budget (epochs, points, attack steps)
    paper: str | None = None
    hyperparameters: Mapping[str, Any] | None = None
    trained_by: str | None = None  # the command that trained it, from the sidecar
    source: str | None = None  # how it was loaded (checkpoint, zoo, factory, …)

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "defense": self.defense, "path": self.path, "sha256": self.sha256,
                "arch": self.arch, "paper": self.paper, "variant": self.variant,
                "hyperparameters": self.hyperparameters, "training_budget": self.training_budget,
                "trained_by": self.trained_by,
                **{key: value for key, value in (("source", self.source), ("input", self.input)) if value is not None}}


@dataclass(frozen=True)
class Provenance:
    date: str
    device: str | None
    precision: str
    git_sha: str | None
    versions: Mapping[str, str | None]
    channels_last: bool | None = None  # absent from records before the speed options
    compile: bool | None = None

    def to_json(self) -> dict[str, Any]:
        speed = {key: value for key, value in (("channels_last", self.channels_last), ("compile", self.compile))
                 if value is not None}
        return {"versions": dict(self.versions), "git_sha": self.git_sha, "device": self.device, "date": self.date,
                "precision": self.precision, **speed}


@dataclass(frozen=True)
class RunSettings:
    """How the run was asked for (the record's `config`); None: not recorded by older versions."""

    attacks: str  # the attacks as the run was asked for them
    seed: int
    batch_size: int | None = None
    device: str | None = None
    resumed: bool = False  # the run continued from saved progress
    cascade: bool | None = None
    world_size: int | None = None
    randomized_draws: int | None = None  # a randomized model: draws per prediction (majority vote)

    def to_json(self) -> dict[str, Any]:
        optional = {"batch_size": self.batch_size, "device": self.device, "cascade": self.cascade,
                    "world_size": self.world_size}
        randomized = ({"randomized_draws": self.randomized_draws, "randomized_rule": "majority vote"}
                      if self.randomized_draws else {})
        return {"attacks": self.attacks, "seed": self.seed, "resumed": self.resumed,
                **{key: value for key, value in optional.items() if value is not None}, **randomized}


@dataclass(frozen=True)
class RunRecord:
    """The run record, typed: what the harness fills and `to_json` writes (the one writer), and what
    `of` reads back from a validated file; `of(x).to_json()` is `x` for every record this version writes."""

    file: str | None  # the record's file name, when it was read from a results folder
    schema_version: int
    purpose: RunPurpose
    threat: ThreatModel
    model: ModelInfo
    dataset: str
    selection: str | None  # how the points were chosen ("first-n", "random-n (seed 3)", a file's points)
    sample_seed: int | None
    index_sha256: str | None
    settings: RunSettings
    provenance: Provenance
    clean: Proportion
    attacks: Mapping[str, AttackResult]  # in the run's order
    worst_case: Proportion
    warnings: tuple[str, ...]
    index: np.ndarray  # int [n]: test-set index of each point
    labels: np.ndarray | None  # int [n]
    clean_correct: np.ndarray  # bool [n]
    worst_flags: np.ndarray  # bool [n]: robust under every attack of the run
    broken_first_by: tuple[str | None, ...] | None
    certified: Mapping[str, CertifiedResult] = field(default_factory=dict)  # by method, in the run's order

    @property
    def seed(self) -> int:
        return self.settings.seed

    @property
    def attack_list(self) -> str:
        return self.settings.attacks

    @property
    def resumed(self) -> bool:
        return self.settings.resumed

    @property
    def n(self) -> int:
        return int(self.index.shape[0])

    @property
    def run(self) -> str:
        """The run's name in tables: the record file's stem."""
        return Path(self.file).stem if self.file else ""

    @property
    def order(self) -> tuple[str, str]:
        """Oldest first: the run's date, then its file name (two runs in one second)."""
        return self.provenance.date, self.file or ""

    @property
    def has_per_attack_flags(self) -> bool:
        """Whether each attack's flags are its own (not a cascade's "robust to this and all before")."""
        return self.purpose is not RunPurpose.CASCADE

    def flags(self, label: str) -> np.ndarray:
        """Robust or not under the attack `label`, or under every attack (`WORST_CASE`), per point."""
        return self.worst_flags if label == WORST_CASE else self.attacks[label].flags

    def by_index(self, flags: np.ndarray) -> dict[int, bool]:
        """Per-point values keyed by test-set index."""
        return dict(zip(self.index.tolist(), flags.tolist(), strict=True))

    def flags_by_index(self, label: str) -> dict[int, bool]:
        return self.by_index(self.flags(label))

    def clean_indices(self) -> set[int]:
        """Test-set indices of the points the model classifies correctly."""
        return set(self.index[self.clean_correct].tolist())

    def first_broken_by(self) -> dict[int, str | None]:
        """The attack (and component) that broke each point first, by test-set index."""
        assert self.broken_first_by is not None, "records of schema 2 keep broken_first_by"
        return dict(zip(self.index.tolist(), self.broken_first_by, strict=True))

    def to_json(self) -> dict[str, Any]:
        """The record file's JSON (the one writer: `bench.records.store.write_record` stores it)."""
        margins = {label: list(a.margins) for label, a in self.attacks.items() if a.margins is not None}
        per_example: dict[str, Any] = {
            "index": self.index.tolist(),
            **({"label": self.labels.tolist()} if self.labels is not None else {}),
            "clean_correct": flag_text(self.clean_correct),
            "robust": {label: flag_text(a.flags) for label, a in self.attacks.items()},
            "worst_case": flag_text(self.worst_flags),
            **({"broken_first_by": list(self.broken_first_by)} if self.broken_first_by is not None else {}),
            **({"margin": margins} if margins else {}),
            **({"certified": {m: flag_text(c.flags) for m, c in self.certified.items()},
                "refuted": {m: flag_text(c.refuted) for m, c in self.certified.items()},
                "certified_margin": {m: list(c.margins) for m, c in self.certified.items()}}
               if self.certified else {})}
        return {
            "schema_version": self.schema_version, "config": self.settings.to_json(),
            "threat": {"norm": self.threat.norm.value, "eps": self.threat.eps}, "purpose": self.purpose.value,
            "model": self.model.to_json(),
            "data": {"dataset": self.dataset, "split": "test", "n": self.n, "selection": self.selection,
                     "sample_seed": self.sample_seed,
                     **({"index_sha256": self.index_sha256} if self.index_sha256 is not None else {})},
            "provenance": self.provenance.to_json(),
            "clean": {"accuracy": self.clean.value, "count": self.clean.count, "ci95": list(self.clean.interval)},
            "attacks": {label: a.to_json() for label, a in self.attacks.items()},
            "worst_case": {"robust_accuracy": self.worst_case.value, "count": self.worst_case.count,
                           "ci95": list(self.worst_case.interval)},
            "warnings": list(self.warnings), "per_example": per_example,
            **({"certified": {m: c.to_json() for m, c in self.certified.items()}} if self.certified else {})}

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> RunRecord:
        """A record as `bench.records.schema` returns it (upgraded and validated)."""
        data, per, prov, model = record["data"], record["per_example"], record["provenance"], record["model"]
        n = int(data["n"])

        def accuracy(flags: np.ndarray) -> Proportion:
            """From the flags (the rules checked the recorded accuracy agrees; the interval is the
            harness's formula, so the recorded `ci95` is not needed)."""
            return Proportion(int(flags.sum()), n)

        margins = per.get("margin", {})
        attacks = {}
        for label, res in record["attacks"].items():
            flags, passes = _flags(per["robust"][label]), res["passes"]
            attacks[label] = AttackResult(
                label, res["attack"], res["protocol"], res["config"], accuracy(flags), float(res["seconds"]),
                float(passes["forward_per_example"]), float(passes["backward_per_example"]),
                bool(res.get("adaptive", False)), flags, tuple(res.get("stages", ())), tuple(res.get("warnings", ())),
                tuple(margins[label]) if label in margins else None, passes.get("forward"), passes.get("backward"),
                res.get("stage_cost"))
        clean, worst = _flags(per["clean_correct"]), _flags(per["worst_case"])
        certified = {
            method: CertifiedResult(method, bool(res.get("exact", False)), accuracy(_flags(per["certified"][method])),
                                    _flags(per["certified"][method]), _flags(per["refuted"][method]),
                                    tuple(per["certified_margin"][method]), float(res["seconds"]), res["config"])
            for method, res in record.get("certified", {}).items()}
        config = record["config"]
        return cls(
            file=record.get("_file"), schema_version=int(record["schema_version"]),
            purpose=RunPurpose(record["purpose"]),
            threat=ThreatModel(Norm(record["threat"]["norm"]), float(record["threat"]["eps"])),
            model=ModelInfo(model["label"], model["path"], model["sha256"], model.get("defense"),
                            model.get("variant"), model.get("arch"), model.get("input"),
                            model.get("training_budget"), model.get("paper"), model.get("hyperparameters"),
                            model.get("trained_by"), model.get("source")),
            dataset=data["dataset"], selection=data.get("selection"), sample_seed=data.get("sample_seed"),
            index_sha256=data.get("index_sha256"),
            settings=RunSettings(config.get("attacks", ""), int(config["seed"]), config.get("batch_size"),
                                 config.get("device"), bool(config.get("resumed", False)), config.get("cascade"),
                                 config.get("world_size"), config.get("randomized_draws")),
            provenance=Provenance(prov["date"], prov.get("device"), prov.get("precision", "fp32"),
                                  prov.get("git_sha"), prov.get("versions", {}), prov.get("channels_last"),
                                  prov.get("compile")),
            clean=accuracy(clean), attacks=attacks, worst_case=accuracy(worst),
            warnings=tuple(record.get("warnings", ())), index=np.asarray(per["index"], dtype=np.int64),
            labels=np.asarray(per["label"], dtype=np.int64) if "label" in per else None,
            clean_correct=clean, worst_flags=worst,
            broken_first_by=tuple(per["broken_first_by"]) if "broken_first_by" in per else None,
            certified=certified)


def load_run_records(directory: Path) -> list[RunRecord]:
    """Every record in a results folder, validated (`bench.records.schema.load_records`) and typed."""
    return [RunRecord.of(record) for record in load_records(directory)]
