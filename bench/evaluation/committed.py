"""The committed checkpoints of registered defenses, and what attacks may know about a model.

Between the attacks (which never import defenses or checkpoints) and the application: attack
contexts are built here, with the defense's adaptive attacks and a surrogate source for transfer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from bench.attacks.base import AttackContext
from bench.errors import BenchError
from bench.loading.untrusted import readable_file
from defenses import DEFENSES
from defenses.training import checkpoints
from defenses.training.registry import transfer_surrogates


def committed_checkpoint(dataset: str, defense: str) -> Path | None:
    """Where `--defense NAME` looks for `dataset` (None when the defense has no recipe for it)."""
    recipe = DEFENSES.get(defense).recipes.get(dataset)
    return checkpoints.default_path(dataset, defense, recipe.arch) if recipe else None


def committed_defenses(dataset: str) -> list[str]:
    """Registered defenses whose committed checkpoint for `dataset` exists."""
    return [name for name, _ in DEFENSES.items() if (path := committed_checkpoint(dataset, name)) and path.is_file()]


@dataclass(frozen=True)
class CheckpointSurrogates:
    """Transfer surrogates from checkpoints: a registered defense's committed one for `dataset`,
    or a checkpoint path; sidecar and sha256 checked, no code run (`defenses.training.checkpoints.load`)."""

    dataset: str | None
    ranked: tuple[str, ...] = field(default_factory=transfer_surrogates)

    def locate(self, spec: str) -> Path:
        path = Path(spec)
        if path.exists() or "/" in spec or path.suffix:
            readable_file(path, f"transfer:{spec}: checkpoint")
        if not path.is_file():
            if self.dataset is None:
                raise BenchError(f"transfer:{spec}: no dataset to find the surrogate's checkpoint for")
            try:
                committed = committed_checkpoint(self.dataset, spec)
            except BenchError as exc:
                raise BenchError(f"transfer:{spec}: {exc}") from None
            if committed is None or not committed.is_file():
                raise BenchError(f"transfer:{spec}: no committed {self.dataset} checkpoint of {spec!r}; "
                                 "name a defense with one (`bench ls defenses`) or a checkpoint path")
            path = committed
        trained_on = checkpoints.read_sidecar(path)["dataset"]
        if self.dataset is not None and trained_on != self.dataset:
            raise BenchError(f"transfer surrogate {path} was trained on {trained_on}, not {self.dataset}")
        return path

    def load(self, path: Path) -> nn.Module:
        module, _ = checkpoints.load(path)
        for p in module.parameters():
            p.requires_grad_(False)
        return module.eval()

    def available(self, name: str) -> bool:
        if self.dataset is None:
            return False
        path = committed_checkpoint(self.dataset, name)
        return path is not None and path.is_file()


def attack_context(dataset: str | None, defense: str | None = None) -> AttackContext:
    """What attacks may know about the model under test: its dataset, its defense and the adaptive
    attacks that defense calls for, and where transfer surrogates come from."""
    own = DEFENSES.get(defense).adaptive_attacks if defense and defense in DEFENSES else ()
    return AttackContext(dataset, defense, tuple(own), CheckpointSurrogates(dataset))
