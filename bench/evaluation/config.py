"""The resolved configuration of one `bench run`: built once from the CLI, then passed around."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from bench.attacks import Attack, AttackSpec, build_attacks, parse_attacks
from bench.data import DATASETS, DEFAULT_DATASET
from bench.device import resolve_device
from bench.errors import BenchError
from bench.evaluation.committed import attack_context
from bench.loading.model import Precision, Speed
from bench.loading.sources import ModelSpec
from bench.records.schema import RunPurpose
from bench.threat import Norm, ThreatModel, parse_eps
from bench.verifier.runner import TIME_LIMIT, Method

# What a run, a sweep, the API and the audit's standard list attack with unless told otherwise.
STANDARD_ATTACKS = parse_attacks("fgsm,pgd,cw,aa")
RANDOMIZED_DRAWS = 21  # odd, so that a vote between two classes cannot tie


@dataclass(frozen=True)
class RunConfig:
    dataset: str
    threat: ThreatModel
    attack_specs: tuple[AttackSpec, ...]
    defense: str | None = None
    checkpoint: Path | None = None
    model: ModelSpec | None = None
    label: str | None = None  # the model's name in records (--label), instead of the loader's
    sha256: str | None = None
    data_dir: Path | None = None
    n: int | None = None
    sample_seed: int | None = None
    seed: int = 0
    batch_size: int = 500
    device: str = "auto"
    speed: Speed = Speed()
    save_adv: bool = False  # keep the adversarial examples (worst case) next to the record
    results_dir: Path = Path("results/runs")
    resume: bool | None = False  # None: continue saved progress when there is some (sweeps)
    allow_randomized: bool = False
    draws: int = RANDOMIZED_DRAWS  # a randomized model's predictions: majority vote over this many forwards
    quiet: bool = False
    purpose: RunPurpose = RunPurpose.EVALUATION
    extra_warnings: tuple[str, ...] = ()  # the audit's failed model checks, carried into the record
    selection: str | None = None  # how the points were chosen, when neither first-n nor a sample seed
    in_process: bool = False  # the model is an nn.Module handed to the Python API, not named here
    certify: tuple[Method, ...] = ()  # verifiers to run on the same points after the attacks
    certify_time_limit: float = TIME_LIMIT  # seconds per point for an exact method

    def __post_init__(self) -> None:
        if self.draws < 1:
            raise BenchError("--draws must be at least 1")
        if self.batch_size < 1:
            raise BenchError("--batch-size must be at least 1")
        if self.n is not None and self.n < 1:
            raise BenchError(f"--n must be between 1 and the test set size, got {self.n}")
        if self.sample_seed is not None and self.n is None:
            raise BenchError("--sample-seed draws --n points at random: give --n too (without it every test "
                             "point is evaluated and the seed would change nothing)")
        if sum(x is not None for x in (self.defense, self.checkpoint, self.model)) + self.in_process != 1:
            raise BenchError("give exactly one of --defense NAME, --checkpoint PATH or --model SPEC")
        if self.certify and self.threat.norm is not Norm.LINF:
            raise BenchError("--certify bounds L∞ balls only: drop it, or evaluate --norm linf")
        if not 0 < self.certify_time_limit < float("inf"):
            raise BenchError("--certify-time-limit must be a positive number of seconds")

    @property
    def cascade(self) -> bool:
        """Only the worst case is asked for: each attack runs on what the earlier ones left robust."""
        return self.purpose is RunPurpose.CASCADE

    def attacks(self) -> list[Attack]:
        known = self.dataset if self.dataset in DATASETS else None  # points given as tensors name no dataset
        return build_attacks(self.attack_specs, self.threat.norm, attack_context(known, self.defense_name()))

    def defense_name(self) -> str | None:
        """The registered defense behind the model: named, or in the checkpoint's sidecar."""
        if self.defense is not None:
            return self.defense
        if self.checkpoint is not None and self.checkpoint.is_file():
            from defenses.training.checkpoints import read_sidecar

            name = read_sidecar(self.checkpoint).get("defense")
            return str(name) if name else None
        return None

    def check_speed(self, device: torch.device) -> None:
        if self.speed.precision in (Precision.FP16, Precision.TF32) and device.type != "cuda":
            raise BenchError(f"--precision {self.speed.precision.value} needs CUDA; on CPU use bf16 (or fp32)")

    def torch_device(self) -> torch.device:
        return resolve_device(self.device)

    @staticmethod
    def resolve_dataset(dataset: str | None, checkpoint: Path | None) -> str:
        """The dataset asked for, else the one a checkpoint's sidecar was trained on, else
        fashion-mnist; a checkpoint trained on another dataset than the one asked for is refused."""
        if checkpoint is not None and checkpoint.is_file():
            from defenses.training.checkpoints import read_sidecar

            trained_on = read_sidecar(checkpoint)["dataset"]
            if dataset and trained_on and dataset != trained_on:
                raise BenchError(f"{checkpoint} was trained on {trained_on}, not {dataset}")
            dataset = dataset or trained_on
        dataset = dataset or DEFAULT_DATASET
        DATASETS.get(dataset)
        return dataset

    @staticmethod
    def resolve_threat(dataset: str, norm_text: str | None, eps_text: str | None) -> ThreatModel:
        spec = DATASETS.get(dataset)
        norm = Norm.parse(norm_text) if norm_text else None
        if eps_text is None:
            return spec.default_threat(norm)
        threat = ThreatModel(norm or spec.default_threat().norm, parse_eps(eps_text))
        threat.check_fits(spec.shape[0] * spec.shape[1] * spec.shape[2])
        return threat
