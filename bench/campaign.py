"""`bench campaign import`: merge what a GPU campaign sent back into this tree.

The archives come from another machine, so they are read as untrusted: only regular files under
known names are accepted (no links, absolute paths or `..`), every run record is validated, every
checkpoint is read with the weights-only loader and must match its sidecar's sha256, and nothing is
written until everything has passed. Records keep their file names and are never overwritten (an
identical file already present counts as imported); full-budget checkpoints go to
checkpoints/<dataset>-<budget>/ and the records that evaluated them are pointed there. The GPU
performance rows and the CUDA test reports go to results/gpu/; the derived files are rebuilt.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import lzma
import os
import re
import tarfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from bench.errors import BenchError, first_line
from bench.files import atomic_write, ensure_writable_dir, open_regular, parse_json
from bench.loading.untrusted import load_tensors
from bench.records.run_record import RunRecord
from bench.records.schema import RecordError, portable_path, upgrade
from bench.records.store import record_text

MAX_MEMBER_BYTES = 64 << 20
MAX_TOTAL_BYTES = 1 << 30  # a campaign sends 11 checkpoints of ≈ 1 MB and a few hundred records
MAX_MEMBERS = 10_000
# archive member → what it is; anything else in an archive is refused
MEMBERS = {
    "record": re.compile(r"runs/[\w.-]+\.json"),
    "checkpoint": re.compile(r"checkpoints/[\w.-]+\.pt"),
    "sidecar": re.compile(r"checkpoints/[\w.-]+\.json"),
    "report": re.compile(r"(perf-gpu\.json|cuda-report\.jsonl|cuda-tests\.xml|manifest\.json)"),
    "log": re.compile(r"logs/[\w.-]+\.log"),
}


@dataclass
class Campaign:
    """Everything read from the archives, checked, not yet written."""

    records: dict[str, RunRecord] = field(default_factory=dict)  # file name → record
    checkpoints: dict[str, bytes] = field(default_factory=dict)  # stem → file bytes
    sidecars: dict[str, dict[str, Any]] = field(default_factory=dict)  # stem → sidecar
    reports: dict[str, bytes] = field(default_factory=dict)  # file name → bytes

    def holds(self, kind: str, name: PurePosixPath) -> bool:
        """Whether a member of this kind and name was read already (two would silently replace)."""
        by_kind: dict[str, Mapping[str, object]] = {"record": self.records, "checkpoint": self.checkpoints,
                                                    "sidecar": self.sidecars, "report": self.reports}
        key = name.stem if kind in ("checkpoint", "sidecar") else name.name
        return key in by_kind.get(kind, {})


@dataclass(frozen=True)
class Imported:
    records_new: int
    records_present: int
    checkpoints: list[Path]
    reports: list[Path]


def _kind(name: str, archive: Path) -> str | None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise BenchError(f"{archive}: unsafe member name {name!r} (absolute or with ..): refused")
    for kind, pattern in MEMBERS.items():
        if pattern.fullmatch(str(path)):
            return kind
    return None


@contextlib.contextmanager
def _opened(archive: Path) -> Iterator[tarfile.TarFile]:
    if not archive.exists():
        raise BenchError(f"no campaign archive at {archive}")
    try:  # a folder, FIFO or device is refused at once, without a read that could hang
        handle = os.fdopen(open_regular(archive, "campaign archive"), "rb")
    except BenchError as exc:
        raise BenchError(f"{archive} is not a readable campaign archive: {exc}") from None
    with handle:
        try:
            tar = tarfile.open(fileobj=handle, mode="r:*")  # noqa: SIM115 (closed below, after the check)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise BenchError(f"{archive} is not a readable campaign archive (.tar.gz): {first_line(exc)}") from None
        with tar:
            yield tar


def _members(tar: tarfile.TarFile, archive: Path) -> Iterator[tarfile.TarInfo]:
    """The members as the archive is read, each vetted for size before its data is: what the
    decompressor produces is bounded by MAX_MEMBERS headers and MAX_TOTAL_BYTES of data, however
    small the compressed file (a bomb stops at the cap, never in memory)."""
    total = 0
    try:
        for count, member in enumerate(tar, 1):
            total += member.size
            if count > MAX_MEMBERS or total > MAX_TOTAL_BYTES:
                raise BenchError(f"{archive}: more than {MAX_MEMBERS} members or {MAX_TOTAL_BYTES >> 20} MiB "
                                 "unpacked: not a campaign archive, refused")
            yield member
    except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise BenchError(f"{archive} is truncated or corrupt: {first_line(exc)}") from None


def read_archive(archive: Path, into: Campaign) -> None:
    with _opened(archive) as tar:
        for member in _members(tar, archive):
            if member.isdir():
                _kind(member.name + "/x", archive)  # the name check only
                continue
            kind = _kind(member.name, archive)
            if not member.isfile():
                raise BenchError(f"{archive}: {member.name} is a link or special file: refused")
            if kind is None:
                raise BenchError(f"{archive}: unexpected member {member.name} (not a campaign output): refused")
            if member.size > MAX_MEMBER_BYTES:
                raise BenchError(f"{archive}: {member.name} is {member.size} bytes (limit {MAX_MEMBER_BYTES})")
            handle = tar.extractfile(member)
            assert handle is not None
            try:
                payload = handle.read()
            except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
                raise BenchError(f"{archive} is truncated or corrupt at {member.name}: {first_line(exc)}") from None
            _accept(kind, PurePosixPath(member.name), payload, f"{archive}:{member.name}", into)


def _json(payload: bytes, source: str) -> dict[str, Any]:
    value = parse_json(payload, source, "campaign file", BenchError)
    if not isinstance(value, dict):
        raise BenchError(f"{source} is not a JSON object")
    return value


def _accept(kind: str, name: PurePosixPath, payload: bytes, source: str, into: Campaign) -> None:
    if into.holds(kind, name):
        raise BenchError(f"{source}: a second {kind} named {name.name} in the archives: refused")
    if kind == "record":
        try:
            into.records[name.name] = RunRecord.of(upgrade(_json(payload, source), source))
        except RecordError as exc:
            raise BenchError(str(exc)) from None
    elif kind == "checkpoint":
        load_tensors(payload, trust=False, what="checkpoint", name=source, trustable=False)
        into.checkpoints[name.stem] = payload
    elif kind == "sidecar":
        into.sidecars[name.stem] = _json(payload, source)
    elif kind == "report":
        into.reports[name.name] = payload


def _check_checkpoints(campaign: Campaign, checkpoint_dir: Path) -> dict[str, Path]:
    """stem → where it goes; every checkpoint has a sidecar whose sha256 it matches, and an
    existing file there is the same checkpoint."""
    places = {}
    for stem, payload in campaign.checkpoints.items():
        sidecar = campaign.sidecars.get(stem)
        if sidecar is None:
            raise BenchError(f"checkpoint {stem}.pt arrived without its sidecar {stem}.json: refused")
        sha = hashlib.sha256(payload).hexdigest()
        if sidecar.get("sha256") != sha:
            raise BenchError(f"checkpoint {stem}.pt does not match its sidecar's sha256: refused")
        place = checkpoint_dir / _place(sidecar, stem)
        if place.exists() and hashlib.sha256(place.read_bytes()).hexdigest() != sha:
            raise BenchError(f"{place} exists and differs from the campaign's {stem}.pt: never overwritten")
        places[stem] = place
    return places


def _place(sidecar: dict[str, Any], stem: str) -> PurePosixPath:
    """<dataset>-<budget>/<defense>-<arch>.pt, each part a name its registry holds (never a string
    from the file used as a path): a sidecar cannot steer the write out of its folder."""
    from bench.data import DATASETS
    from defenses.nets.archs import ARCHS
    from defenses.training.registry import BUDGETS, DEFENSES

    parts = {key: sidecar.get(key) for key in ("dataset", "budget", "defense", "arch")}
    parts["budget"] = "recipe" if parts["budget"] is None else parts["budget"]  # sidecars from before budgets
    for key, registry in (("dataset", DATASETS), ("budget", BUDGETS), ("defense", DEFENSES), ("arch", ARCHS)):
        if not isinstance(parts[key], str) or parts[key] not in registry.names():
            raise BenchError(f"sidecar {stem}.json: {key} {str(parts[key])[:60]!r} is not a registered {key}: refused")
    if parts["budget"] == "recipe":
        raise BenchError(f"checkpoint {stem}.pt was trained with the registered recipe: a campaign never "
                         "replaces the committed checkpoints")
    return PurePosixPath(f"{parts['dataset']}-{parts['budget']}", f"{parts['defense']}-{parts['arch']}.pt")


def _new_records(campaign: Campaign, runs_dir: Path, places: dict[str, Path]) -> dict[Path, bytes]:
    """File → contents of the records not imported yet (an identical file present is skipped)."""
    by_sha = {campaign.sidecars[s]["sha256"]: places[s] for s in places}
    new = {}
    for name, record in campaign.records.items():
        target = runs_dir / name
        if record.model.sha256 in by_sha:  # evaluated on the campaign machine's copy
            local = dataclasses.replace(record.model, path=portable_path(by_sha[record.model.sha256]))
            record = dataclasses.replace(record, model=local)
        text = record_text(record).encode()
        if target.exists():
            if target.read_bytes() != text:
                raise BenchError(f"{target} exists with other contents: results are never overwritten")
            continue
        new[target] = text
    return new


def import_campaign(archives: list[Path], runs_dir: Path, checkpoint_dir: Path, *, rebuild: bool = True
                    ) -> Imported:
    campaign = Campaign()
    for archive in archives:
        read_archive(archive, campaign)
    places = _check_checkpoints(campaign, checkpoint_dir)
    new = _new_records(campaign, runs_dir, places)
    reports_dir = runs_dir.parent / "gpu" if runs_dir.name == "runs" else runs_dir / "gpu"
    for folder in {runs_dir, reports_dir, *(p.parent for p in places.values())}:
        ensure_writable_dir(folder, str(folder))
    # everything is checked: write
    for target, payload in new.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, payload, exclusive=True)
    for stem, place in places.items():
        place.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(place, campaign.checkpoints[stem])
        sidecar = {**campaign.sidecars[stem], "file": place.name}  # as `bench train` writes it
        atomic_write(place.with_suffix(".json"), (json.dumps(sidecar, indent=2, sort_keys=True) + "\n").encode())
    for name, payload in campaign.reports.items():
        reports_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(reports_dir / name, payload)
    if rebuild:
        from bench.reporting.derived import rebuild as rebuild_derived

        rebuild_derived(runs_dir)
    return Imported(len(new), len(campaign.records) - len(new), list(places.values()),
                    [reports_dir / name for name in campaign.reports])
