"""The bad-input corpus: every user error, through the real CLI entry point, is one line on stderr
and exit status 2 — never a traceback, never a red gate, never a half-written derived file.

Each case is (id, argv, fragment the message must contain). `{bad}` in an argument is the folder of
damaged files built once for the module (see `corpus`); `{tmp}` is a fresh folder per case. Every
case runs from an empty working directory, so a case that wrongly succeeded could not write into
the repository.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import shutil
import signal
import socket
from pathlib import Path

import pytest
import torch

from bench.cli import main
from defenses.training import checkpoints
from tests.conftest import COMMITTED, REPO

PGD_AT = COMMITTED / "pgd-at-smallcnn.pt"
# a committed schema-2 record with per-example margins (the audit's adaptive run on pgd-at)
RECORD = REPO / "results" / "runs" / "2026-11-21T162357Z-fashion-mnist-pgd-at-8f318a11.json"
FACTORY = "examples.toy_models:plain_smallcnn"
RUN = ["run", "--defense", "standard", "--attack", "fgsm", "--n", "5", "--results-dir", "{tmp}/runs"]


def _run(*extra: str) -> list[str]:
    return [*RUN, *extra]


def _user(model: str, *extra: str) -> list[str]:
    return ["run", "--model", model, "--attack", "fgsm", "--n", "5", "--results-dir", "{tmp}/runs", *extra]


def _record(damage) -> dict:
    record = json.loads(RECORD.read_text())
    damage(record)
    return record


def _first(record: dict) -> str:
    return next(iter(record["attacks"]))


def _set(path: str, value):
    def damage(record: dict) -> None:
        *parents, last = path.split(".")
        target = record
        for key in parents:
            target = target[key]
        target[last] = value
    return damage


BAD_RECORDS = {
    "eps-string": _set("threat.eps", "0.1"),
    "eps-negative": _set("threat.eps", -0.1),
    "flags-null": _set("per_example.worst_case", None),
    "clean-disagrees": _set("clean.accuracy", 0.99),
    "attack-accuracy-disagrees": lambda r: r["attacks"][_first(r)].update(robust_accuracy=0.01),
    "count-disagrees": _set("worst_case.count", 3),
    "n-string": _set("data.n", "500"),
    "norm-unknown": _set("threat.norm", "l3"),
    "purpose-unknown": _set("purpose", "fun"),
    "index-negative": lambda r: r["per_example"]["index"].__setitem__(0, -4),
    "index-repeated": lambda r: r["per_example"]["index"].__setitem__(1, r["per_example"]["index"][0]),
    "flags-not-binary": lambda r: r["per_example"].update(clean_correct="2" + r["per_example"]["clean_correct"][1:]),
    "robust-not-clean": lambda r: r["per_example"]["robust"].update(
        {_first(r): "1" * r["data"]["n"]}),
    "worst-not-and": lambda r: r["per_example"].update(worst_case="0" * len(r["per_example"]["worst_case"])),
    "passes-missing": lambda r: r["attacks"][_first(r)].pop("passes"),
    "seconds-nan": lambda r: r["attacks"][_first(r)].update(seconds=float("nan")),
    "margin-wrong-length": lambda r: r["per_example"]["margin"].update({_first(r): [0.1]}),
    "version-bool": _set("schema_version", True),
    "sample-seed-text": _set("data.sample_seed", "3"),
    "top-level-list": lambda r: None,
    # allow-lists: values a record of ours can have, nothing else
    "index-beyond-split": lambda r: r["per_example"]["index"].__setitem__(0, 10_000),
    "index-sha-mismatch": _set("data.index_sha256", "0" * 64),
    "sha256-markup": _set("model.sha256", "<script>alert(1)</script>" + "0" * 39),
    "sha256-upper": lambda r: r["model"].update(sha256=r["model"]["sha256"].upper()),
    "date-markup": _set("provenance.date", '2026-11-21T16:23:57Z"><svg onload=alert(1)>'),
    "date-words": _set("provenance.date", "yesterday"),
    "dataset-unknown": _set("data.dataset", "imagenet"),
    "dataset-traversal": _set("data.dataset", "../../etc"),
    "split-train": _set("data.split", "train"),
    "label-beyond-classes": lambda r: r["per_example"]["label"].__setitem__(0, 10),
    "points-beyond-split": lambda r: _grow(r, 20_000),
}


def _grow(record: dict, n: int) -> None:
    """A consistent record of n points, all robust: n beyond the test split (10 000 points)."""
    import numpy as np

    from bench.data import hash_indices

    index = list(range(n))
    record["data"].update(n=n, index_sha256=hash_indices(np.array(index)))
    ones = "1" * n
    pe = record["per_example"]
    pe.update(index=index, label=[0] * n, clean_correct=ones, worst_case=ones, robust={a: ones for a in pe["robust"]},
              broken_first_by=[None] * n, margin={a: [1.0] * n for a in pe.get("margin", {})})
    for summary in (record["clean"], record["worst_case"], *record["attacks"].values()):
        key = "accuracy" if "accuracy" in summary else "robust_accuracy"
        summary.update({key: 1.0, "count": n})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, natural_ckpt: Path) -> Path:
    bad = tmp_path_factory.mktemp("bad")
    (bad / "empty.pt").write_bytes(b"")
    (bad / "html.pt").write_text("<!DOCTYPE html><html><body>Sign in to continue</body></html>")
    (bad / "garbage.pt").write_bytes(bytes(range(256)) * 4)
    (bad / "text.pt").write_text("weights go here\n")
    (bad / "folder").mkdir()
    (bad / "a-file").write_text("x")
    truncated = natural_ckpt.read_bytes()
    (bad / "truncated.pt").write_bytes(truncated[: len(truncated) // 2])
    shutil.copy(checkpoints.sidecar_path(natural_ckpt), bad / "truncated.json")
    for name in ("nosidecar.pt", "badsidecar.pt", "sidecarfield.pt", "sidecartype.pt", "shamismatch.pt",
                 "mnist.pt", "unknownarch.pt"):
        shutil.copy(natural_ckpt, bad / name)
    meta = json.loads(checkpoints.sidecar_path(natural_ckpt).read_text())
    (bad / "badsidecar.json").write_text("{not json")
    (bad / "sidecarfield.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "arch"}))
    (bad / "sidecartype.json").write_text(json.dumps({**meta, "dataset": 7}))
    (bad / "shamismatch.json").write_text(json.dumps({**meta, "sha256": "0" * 64}))
    (bad / "mnist.json").write_text(json.dumps({**meta, "dataset": "mnist"}))
    (bad / "unknownarch.json").write_text(json.dumps({**meta, "arch": "resnet-9000"}))
    (bad / "notfit.pt").write_bytes(b"")
    torch.save({"weight": torch.zeros(3, 3)}, bad / "notfit.pt")
    torch.save([1, 2, 3], bad / "list.pt")
    adv = {"format": "bench-adv", "version": 1, "dataset": "fashion-mnist", "split": "test", "norm": "linf",
           "eps": 0.1, "index": torch.tensor([0, 1]), "x_adv": torch.zeros(2, 1, 28, 28)}
    torch.save({**adv, "index": torch.tensor([0, 10_000])}, bad / "adv-range.adv.pt")
    torch.save({**adv, "index": torch.tensor([4, 4])}, bad / "adv-twice.adv.pt")
    torch.save({**adv, "eps": -1.0}, bad / "adv-eps.adv.pt")
    torch.save({**adv, "x_adv": torch.zeros(3, 1, 28, 28)}, bad / "adv-shape.adv.pt")
    torch.save({**adv, "x_adv": torch.zeros(2, 3, 32, 32)}, bad / "adv-cifar.adv.pt")
    torch.save({**adv, "split": "train"}, bad / "adv-train.adv.pt")
    torch.save(adv, bad / "adv,comma.adv.pt")
    with open(natural_ckpt, "rb") as src:
        zipped = src.read()
    (bad / "corrupt.ts").write_bytes(zipped[:100] + b"\0" * 200 + zipped[300:])
    (bad / "weights-as-model.pt").write_bytes(zipped)
    data = bad / "data"
    data.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
                 "train-labels-idx1-ubyte.gz"):
        (data / name).write_bytes(b"not gzip at all")
    short = bad / "short"
    short.mkdir()
    with gzip.open(short / "t10k-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(bytes([0, 0, 8, 3]) + (10000).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\0" * 99)
    shutil.copy(Path("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"), short)
    for name, damage in BAD_RECORDS.items():
        runs = bad / "records" / name / "runs"
        runs.mkdir(parents=True)
        content = [1, 2] if name == "top-level-list" else _record(damage)
        (runs / RECORD.name).write_text(json.dumps(content, allow_nan=True))
    (bad / "corrupt-runs" / "runs").mkdir(parents=True)
    (bad / "corrupt-runs" / "runs" / "r.json").write_text('{"schema_version": 2, "model": ')
    (bad / "nockpts").mkdir()
    (bad / "baselines").mkdir()
    (bad / "baselines" / "fashion-mnist").mkdir()
    (bad / "baselines" / "fashion-mnist" / "standard.json").write_text("{broken")
    (bad / "state.json").write_text("{half a state")
    _campaign_archives(bad / "campaign", natural_ckpt)
    _hostile_files(bad, natural_ckpt)
    for name, sidecar in (("sidecar-list", "[1, 2]"), ("sidecar-mean-text", '{"mean": ["a"], "std": [1]}'),
                          ("sidecar-range", '{"input_range": 7}'), ("sidecar-broken", "{mean")):
        shutil.copy(natural_ckpt, bad / f"{name}.pt")
        (bad / f"{name}.json").write_text(sidecar)
    return bad


def _tar(path: Path, members: dict[str, bytes], links: tuple[str, ...] = ()) -> None:
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        for name in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)


def _campaign_archives(folder: Path, natural_ckpt: Path) -> None:
    """Damaged GPU-campaign archives for `bench campaign import`."""
    from tests.malicious import Payload, torch_pickle

    folder.mkdir()
    weights = natural_ckpt.read_bytes()
    meta = json.loads(checkpoints.sidecar_path(natural_ckpt).read_text())
    full = {**meta, "budget": "full"}
    record = RECORD.read_bytes()
    _tar(folder / "traversal.tar.gz", {"../../evil.json": record})
    _tar(folder / "absolute.tar.gz", {"/tmp/evil.json": record})
    _tar(folder / "symlink.tar.gz", {}, links=("runs/r.json",))
    _tar(folder / "unexpected.tar.gz", {"setup.py": b"import os"})
    _tar(folder / "bad-record.tar.gz", {"runs/r.json": json.dumps({**json.loads(record), "threat": 1}).encode()})
    _tar(folder / "no-sidecar.tar.gz", {"checkpoints/x.pt": weights})
    _tar(folder / "sha.tar.gz", {"checkpoints/x.pt": weights, "checkpoints/x.json": json.dumps(
        {**full, "sha256": "0" * 64}).encode()})
    evil = torch_pickle(Payload(folder / "ran"))
    _tar(folder / "code.tar.gz", {"checkpoints/x.pt": evil})
    _tar(folder / "recipe.tar.gz", {"checkpoints/x.pt": weights, "checkpoints/x.json": json.dumps(meta).encode()})
    good = folder / "good.tar.gz"
    _tar(good, {"runs/r.json": record})
    (folder / "truncated.tar.gz").write_bytes(good.read_bytes()[: good.stat().st_size // 2])


DEEP = b'{"a": ' * 5000 + b"1" + b"}" * 5000
AUDIT = REPO / "results" / "audits" / "20261121T155026Z-fashion-mnist-ancra.json"


def _audit(damage) -> bytes:
    audit = json.loads(AUDIT.read_text())
    damage(audit)
    return json.dumps(audit).encode()


BAD_AUDITS = {
    "verdict-unknown": lambda a: a.update(verdict="<img src=x onerror=alert(1)>"),
    "robust-missing": lambda a: a.pop("robust"),
    "pair-over-n": lambda a: a["robust"]["standard"].update(aa=[201, 200]),
    "pair-text": lambda a: a["robust"]["standard"].update(aa="69%"),
    "sha-not-hex": lambda a: a["model"].update(sha256="x" * 64),
    "date-markup": lambda a: a.update(date="<b>2026</b>"),
    "checks-not-list": lambda a: a.update(checks={"x": 1}),
    "binarization-text": lambda a: a.update(binarization="passed"),
    "n-huge": lambda a: a.update(n=10**30),
    "dataset-unknown": lambda a: a.update(dataset="imagenet"),
    "check-unknown": lambda a: a["checks"][0].update(check="<script>alert(1)</script>"),
}


BASELINE_EDITS = {  # the committed baseline with one field broken
    "flags": lambda b: b["flags"].update(clean="<script>alert(1)</script>"),  # one measure's flags not 0/1
    "attack": lambda b: b["protocol"].update(attacks="fgsm,os:system=1"),  # the protocol a check now runs
    "batch": lambda b: b["protocol"].update(batch_size=0),
}


def _edited_baseline(baseline: Path, name: str) -> None:
    committed = json.loads((REPO / "results" / "baselines" / "fashion-mnist" / "standard.json").read_text())
    BASELINE_EDITS[name](committed)
    baseline.write_text(json.dumps(committed))


def _damaged_ledgers(bad: Path) -> None:
    """Sweep ledgers (bench/cluster/ledger.py) with a field missing, one too many, a wrong type, an unknown state."""
    for name, entry in (("missing", b'{"label": "a"}'), ("extra", b'{"state": "done", "detail": "", "at": "", "x": "1"}'),
                        ("type", b'{"state": 1, "detail": "", "at": ""}'), ("state", b'{"state": "won", "detail": "", "at": ""}')):
        sweep = bad / f"ledger-{name}" / "runs" / ".sweeps" / "s1"
        sweep.mkdir(parents=True)
        submitted = (b'{"label": "a", "model_sha256": "0", "conditions": "0", "cells": ["fgsm"], "executor": "slurm", '
                     b'"job_id": "1", "log": "l", "submitted": ""}')
        (sweep / "a.submitted.json").write_bytes(entry if name == "missing" else submitted)
        if name != "missing":
            (sweep / "a.state.json").write_bytes(entry)


def _hostile_files(bad: Path, natural_ckpt: Path) -> None:
    """What issue 29 found: FIFOs and devices where files belong, JSON beyond what we write,
    audits and sidecars that are not ours, data folders whose files disagree."""
    import os

    os.mkfifo(bad / "fifo.pt")
    _damaged_ledgers(bad)
    os.symlink("/dev/zero", bad / "zero.pt")
    os.mkfifo(bad / "fifo.adv.pt")
    bigint = RECORD.read_bytes().replace(b'"n": ', b'"n": 1' + b"0" * 30, 1)  # a 33-digit data.n
    for name, content in (("deep", DEEP), ("bigint", bigint), ("fifo", None), ("zero", None), ("huge", None)):
        runs = bad / f"json-{name}" / "runs"
        runs.mkdir(parents=True)
        target = runs / RECORD.name
        if name == "fifo":
            os.mkfifo(target)
        elif name == "zero":
            os.symlink("/dev/zero", target)
        elif name == "huge":
            with open(target, "wb") as handle:
                handle.truncate(65 << 20)  # sparse: 65 MiB that cost nothing on disk
        else:
            target.write_bytes(content)
    for name, damage in BAD_AUDITS.items():
        root = bad / "audits" / name
        (root / "runs").mkdir(parents=True)
        shutil.copy(RECORD, root / "runs")
        (root / "audits").mkdir()
        (root / "audits" / AUDIT.name).write_bytes(_audit(damage))
    for name in ("deep", "fifo"):
        root = bad / "audits" / name
        (root / "runs").mkdir(parents=True)
        shutil.copy(RECORD, root / "runs")
        (root / "audits").mkdir()
        if name == "fifo":
            os.mkfifo(root / "audits" / AUDIT.name)
        else:
            (root / "audits" / AUDIT.name).write_bytes(DEEP)
    for name in ("deep", "fifo", "bigint", "flags", "attack", "batch"):
        folder = bad / f"baselines-{name}" / "fashion-mnist"
        folder.mkdir(parents=True)
        baseline = folder / "standard.json"
        if name == "fifo":
            os.mkfifo(baseline)
        elif name in BASELINE_EDITS:
            _edited_baseline(baseline, name)
        else:
            baseline.write_bytes(DEEP if name == "deep" else b'{"baseline_version": 1' + b"0" * 40 + b"}")
        shutil.copy(natural_ckpt, bad / f"sidecar-{name}.pt")
        sidecar = bad / f"sidecar-{name}.json"
        if name == "fifo":
            os.mkfifo(sidecar)
        else:
            sidecar.write_bytes(DEEP if name == "deep" else b'{"mean": [1' + b"0" * 40 + b"]}")
    _data_folders(bad)
    _hostile_campaigns(bad / "campaign", natural_ckpt)


def _idx(path: Path, values: bytes, dims: tuple[int, ...]) -> None:
    header = bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(header + values)


def _data_folders(bad: Path) -> None:
    source = Path("/usr/share/datasets/fashion-mnist")
    for name in ("mismatch", "classes", "oversize", "bomb"):
        folder = bad / f"data-{name}"
        folder.mkdir()
        for split in ("train", "t10k"):
            for kind in ("images-idx3-ubyte.gz", "labels-idx1-ubyte.gz"):
                shutil.copy(source / f"{split}-{kind}", folder)
    _idx(bad / "data-mismatch" / "t10k-labels-idx1-ubyte.gz", bytes(9_999), (9_999,))
    _idx(bad / "data-classes" / "t10k-labels-idx1-ubyte.gz", bytes([42]) * 10_000, (10_000,))
    _idx(bad / "data-oversize" / "t10k-images-idx3-ubyte.gz", bytes(10_001 * 784), (10_001, 28, 28))
    _idx(bad / "data-oversize" / "t10k-labels-idx1-ubyte.gz", bytes(10_001), (10_001,))
    _idx(bad / "data-bomb" / "t10k-images-idx3-ubyte.gz", bytes(300 << 20), (300 << 20,))  # 0.3 MB on disk


def _hostile_campaigns(folder: Path, natural_ckpt: Path) -> None:
    """Sidecars that would steer where a checkpoint is written, archives that never end or explode."""
    import io
    import os
    import tarfile

    weights = natural_ckpt.read_bytes()
    sha = hashlib.sha256(weights).hexdigest()
    meta = {**json.loads(checkpoints.sidecar_path(natural_ckpt).read_text()), "budget": "full", "sha256": sha}
    for name, change in (("dataset-up", {"dataset": "../../.."}), ("defense-up", {"defense": "../../evil"}),
                         ("arch-absolute", {"arch": "/tmp/evil"}), ("budget-number", {"budget": 7}),
                         ("budget-up", {"budget": "../x"}), ("defense-list", {"defense": ["a", "b"]}),
                         ("dataset-missing", {"dataset": None}), ("defense-unknown", {"defense": "mine"})):
        _tar(folder / f"sidecar-{name}.tar.gz", {"checkpoints/x.pt": weights,
                                                 "checkpoints/x.json": json.dumps({**meta, **change}).encode()})
    record = RECORD.read_bytes()
    _tar(folder / "deep-record.tar.gz", {"runs/r.json": DEEP})
    _tar(folder / "bigint-record.tar.gz", {"runs/r.json": record.replace(b'"n": ', b'"n": 1' + b"0" * 30, 1)})
    _tar(folder / "twice-a.tar.gz", {"runs/r.json": record})
    _tar(folder / "twice-b.tar.gz", {"runs/r.json": record.replace(b'"seed": 0', b'"seed": 1')})
    with tarfile.open(folder / "many.tar.bz2", "w:bz2") as tar:  # 10 001 entries that each pass the name check
        for i in range(10_001):
            info = tarfile.TarInfo(f"runs/{i}")
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
    with tarfile.open(folder / "xz.tar.xz", "w:xz") as tar:
        info = tarfile.TarInfo("runs/r.json")
        info.size = len(DEEP)
        tar.addfile(info, io.BytesIO(DEEP))
    os.mkfifo(folder / "fifo.tar.gz")
    os.symlink("/dev/zero", folder / "zero.tar.gz")


CAMPAIGN = ["campaign", "import", "--results-dir", "{tmp}/runs", "--checkpoint-dir", "{tmp}/ckpt"]

CASES: list[tuple[str, list[str], str]] = [
    # the top level
    ("no-command", [], "required: command"),
    ("unknown-command", ["runn"], "Did you mean: run"),
    ("unknown-flag", ["run", "--defense", "standard", "--bogus"], "unrecognized arguments"),
    ("misspelt-flag", ["run", "--defence", "pgd-at"], "is required"),
    # bench run: choosing the model
    ("run-no-model", ["run", "--attack", "fgsm"], "one of the arguments --defense --checkpoint --model is required"),
    ("run-two-models", ["run", "--defense", "pgd-at", "--model", "x.pt"], "not allowed with argument"),
    ("run-label-path", ["run", "--defense", "pgd-at", "--label", "../elsewhere"], "use letters, digits"),
    ("run-label-slash", ["run", "--defense", "pgd-at", "--label", "a/b"], "use letters, digits"),
    ("run-label-empty", ["run", "--defense", "pgd-at", "--label", ""], "use letters, digits"),
    ("audit-label-dot", ["audit", "--defense", "pgd-at", "--label", ".hidden"], "use letters, digits"),
    ("verify-adv-label-long", ["verify-adv", "--defense", "pgd-at", "--label", "x" * 81], "at most 80"),
    ("check-label-path", ["check", "--model", "mynet:make", "--label", "../../baselines"], "use letters, digits"),
    ("run-unknown-defense", ["run", "--defense", "pgdat"], "Did you mean: pgd-at"),
    ("run-defense-case", ["run", "--defense", "PGD-AT"], "Did you mean: pgd-at"),
    ("run-defense-no-recipe", ["run", "--defense", "pgd-at", "--dataset", "cifar10"], "no checkpoint of pgd-at for cifar10"),
    ("run-ckpt-missing", ["run", "--checkpoint", "{bad}/nope.pt"], "does not exist"),
    ("run-ckpt-folder", _run()[:1] + ["--checkpoint", "{bad}/folder"], "is a directory"),
    ("run-ckpt-empty", ["run", "--checkpoint", "{bad}/empty.pt"], "has no sidecar"),
    ("run-ckpt-truncated", ["run", "--checkpoint", "{bad}/truncated.pt"], "sha256"),
    ("run-ckpt-no-sidecar", ["run", "--checkpoint", "{bad}/nosidecar.pt"], "has no sidecar"),
    ("run-ckpt-sidecar-json", ["run", "--checkpoint", "{bad}/badsidecar.pt"], "not valid JSON"),
    ("run-ckpt-sidecar-field", ["run", "--checkpoint", "{bad}/sidecarfield.pt"], "lacks the field 'arch'"),
    ("run-ckpt-sidecar-type", ["run", "--checkpoint", "{bad}/sidecartype.pt"], "dataset must be a string"),
    ("run-ckpt-sha-mismatch", ["run", "--checkpoint", "{bad}/shamismatch.pt"], "the sidecar expects"),
    ("run-ckpt-other-dataset", ["run", "--checkpoint", "{bad}/mnist.pt", "--dataset", "fashion-mnist"],
     "was trained on mnist"),
    ("run-ckpt-unknown-arch", ["run", "--checkpoint", "{bad}/unknownarch.pt", "--results-dir", "{tmp}/r"],
     "unknown architecture 'resnet-9000'"),
    ("run-ckpt-pinned", ["run", "--checkpoint", str(PGD_AT), "--sha256", "ab" * 32, "--results-dir", "{tmp}/r"],
     "--sha256 expects"),
    ("run-model-missing", _user("{bad}/nope.pt"), "does not exist"),
    ("run-model-folder", _user("{bad}/folder"), "is a directory"),
    ("run-model-not-a-spec", _user("justaword"), "neither a file nor robustbench:NAME"),
    ("run-model-empty", _user("{bad}/empty.pt"), "is an empty file"),
    ("run-model-html", _user("{bad}/html.pt"), "is an HTML page"),
    ("run-model-html-trusted", _user("{bad}/html.pt", "--trust-checkpoint"), "is an HTML page"),
    ("run-model-garbage", _user("{bad}/garbage.pt"), "not a PyTorch file"),
    ("run-model-garbage-trusted", _user("{bad}/garbage.pt", "--trust-checkpoint"), "cannot be read"),
    ("run-model-text", _user("{bad}/text.pt"), "a text file"),
    ("run-model-corrupt-zip", _user("{bad}/corrupt.ts"), "cannot be read"),
    ("run-model-weights-only", _user("{bad}/weights-as-model.pt"), "holds weights"),
    ("run-model-list", _user("{bad}/list.pt"), "holds weights (list)"),
    ("run-model-sha", _user("examples.toy_models:plain_smallcnn", "--weights", str(PGD_AT), "--sha256", "0" * 64),
     "--sha256 expects"),
    ("run-factory-no-module", _user("nosuchpkg.nets:make"), "no module 'nosuchpkg'"),
    ("run-factory-no-attr", _user("examples.toy_models:plain_smalcnn"), "Did you mean: plain_smallcnn"),
    ("run-factory-not-callable", _user("tests.user_models:NOT_A_FACTORY"), "is not callable"),
    ("run-factory-raises", _user("tests.user_models:raising_factory"), "raised ValueError: the factory needs"),
    ("run-factory-not-module", _user("tests.user_models:not_a_module"), "not a torch.nn.Module"),
    ("run-model-tuple", _user("tests.user_models:tuple_output"), "returns a tuple, not a tensor of logits"),
    ("run-model-wrong-shape", _user("tests.user_models:cifar_shaped_mlp"), "fails on inputs of shape (1, 28, 28)"),
    ("run-model-softmax", _user("examples.toy_models:softmax_smallcnn", "--weights", str(PGD_AT)),
     "returns probabilities"),
    ("run-model-randomized", _user("examples.toy_models:noisy_smallcnn", "--weights", str(PGD_AT)), "randomized"),
    ("run-weights-missing", _user("examples.toy_models:plain_smallcnn", "--weights", "{bad}/nope.pt"),
     "does not exist"),
    ("run-weights-folder", _user("examples.toy_models:plain_smallcnn", "--weights", "{bad}/folder"),
     "is a directory"),
    ("run-weights-empty", _user("examples.toy_models:plain_smallcnn", "--weights", "{bad}/empty.pt"),
     "is an empty file"),
    ("run-weights-html", _user("examples.toy_models:plain_smallcnn", "--weights", "{bad}/html.pt"), "HTML page"),
    ("run-weights-garbage", _user("examples.toy_models:plain_smallcnn", "--weights", "{bad}/garbage.pt"),
     "not a PyTorch file"),
    ("run-weights-truncated", _user("examples.toy_models:plain_smallcnn", "--weights", "{bad}/truncated.pt"),
     "corrupt or truncated"),
    ("run-weights-not-fit", _user("examples.toy_models:plain_smallcnn", "--weights", "{bad}/notfit.pt"),
     "does not fit"),
    ("run-weights-list", _user("examples.toy_models:plain_smallcnn", "--weights", "{bad}/list.pt"),
     "holds a list, not a state_dict"),
    ("run-weights-with-file", _user("{bad}/weights-as-model.pt", "--weights", str(PGD_AT)),
     "--weights goes with --model package.module:factory"),
    ("run-weights-sidecar-list", _user(FACTORY, "--weights", "{bad}/sidecar-list.pt"), "not a model sidecar"),
    ("run-weights-sidecar-mean", _user(FACTORY, "--weights", "{bad}/sidecar-mean-text.pt"),
     "mean must be a list of finite numbers"),
    ("run-weights-sidecar-range", _user(FACTORY, "--weights", "{bad}/sidecar-range.pt"), "input_range must be"),
    ("run-weights-sidecar-json", _user(FACTORY, "--weights", "{bad}/sidecar-broken.pt"), "corrupt model sidecar"),
    ("run-weights-without-model", _run("--weights", str(PGD_AT)), "only apply to --model"),
    ("run-trust-without-model", _run("--trust-checkpoint"), "only apply to --model"),
    ("run-model-dir-without-model", _run("--model-dir", "{tmp}"), "only apply to --model"),
    ("run-mean-garbage", _user("examples.toy_models:plain_smallcnn", "--mean", "a,b", "--std", "1"),
     "--mean takes comma-separated numbers"),
    ("run-mean-without-std", _user("examples.toy_models:plain_smallcnn", "--mean", "0.5"), "both --mean and --std"),
    ("run-mean-std-lengths", _user("examples.toy_models:plain_smallcnn", "--mean", "0.5,0.5", "--std", "1"),
     "--mean has 2 values but --std has 1"),
    ("run-std-zero", _user("examples.toy_models:plain_smallcnn", "--mean", "0.5", "--std", "0"),
     "must be positive"),
    ("run-std-nan", _user("examples.toy_models:plain_smallcnn", "--mean", "0.5", "--std", "nan"),
     "finite"),
    ("run-input-range", _user("examples.toy_models:plain_smallcnn", "--input-range", "0-2"), "invalid choice"),
    ("run-robustbench-unknown", ["run", "--model", "robustbench:Wong2020Fst", "--dataset", "cifar10",
                                 "--model-dir", "{tmp}"], "Did you mean: Wong2020Fast"),
    ("run-robustbench-missing", ["run", "--model", "robustbench:Wong2020Fast", "--dataset", "cifar10",
                                 "--model-dir", "{tmp}"], "does not download"),
    ("run-robustbench-mnist", ["run", "--model", "robustbench:Wong2020Fast", "--dataset", "mnist",
                               "--model-dir", "{tmp}"], "RobustBench has no mnist"),
    ("run-robustbench-mean", ["run", "--model", "robustbench:Wong2020Fast", "--dataset", "cifar10",
                              "--mean", "0.5", "--std", "0.2"], "drop --mean"),
    # bench run: data
    ("run-unknown-dataset", _run("--dataset", "imagenet-21k"), "unknown dataset 'imagenet-21k'"),
    ("run-data-dir-empty", _run("--data-dir", "{tmp}"), "files not found"),
    ("run-data-dir-garbage-gz", _run("--data-dir", "{bad}/data"), "cannot be read"),
    ("run-data-dir-truncated", _run("--data-dir", "{bad}/short"), "is truncated"),
    ("run-cifar-missing", ["run", "--model", "tests.user_models:cifar_shaped_mlp", "--dataset", "cifar10",
                           "--data-dir", "{tmp}", "--results-dir", "{tmp}/r"], "cifar10 not found"),
    # bench run: attacks
    ("run-attack-unknown", _run("--attack", "pgdd"), "Did you mean: pgd"),
    ("run-attack-empty", ["run", "--defense", "standard", "--attack", ""], "no attack given"),
    ("run-attack-only-commas", ["run", "--defense", "standard", "--attack", ",,"], "no attack given"),
    ("run-attack-param-first", ["run", "--defense", "standard", "--attack", "steps=3"], "starts with a parameter"),
    ("run-attack-bad-param", _run("--attack", "pgd:stepz=3"), "Did you mean: steps"),
    ("run-attack-bad-value", _run("--attack", "pgd:steps=many"), "is not a valid int"),
    ("run-attack-empty-value", _run("--attack", "pgd:steps="), "is not a valid int"),
    ("run-attack-zero-steps", _run("--attack", "pgd:steps=0"), "pgd:"),
    ("run-attack-bad-bool", _run("--attack", "pgd:random_start=maybe"), "is not a valid bool"),
    ("run-attack-bad-enum", _run("--attack", "pgd:loss=hinge"), "one of"),
    ("run-attack-repeated-key", _run("--attack", "pgd:steps=5,steps=6"), "sets steps twice"),
    ("run-attack-nameless-param", _run("--attack", "pgd:=5"), "parameter without a name"),
    ("run-attack-twice", _run("--attack", "pgd,pgd"), "names the same attack twice"),
    ("run-attack-positional", _run("--attack", "pgd:50"), "write key=value"),
    ("run-attack-aa-params", _run("--attack", "aa:steps=10"), "aa has no parameter"),
    ("run-attack-targets", _run("--attack", "apgd-targeted:targets=50"), "has only 9 classes"),
    ("run-attack-transfer-missing", _run("--attack", "transfer:{bad}/nope.pt"), "nope.pt: checkpoint"),
    ("run-attack-transfer-unknown", _run("--attack", "transfer:pgdat"), "transfer:pgdat: unknown defense"),
    ("run-attack-transfer-garbage", _run("--attack", "transfer:{bad}/garbage.pt"), "has no sidecar"),
    ("run-attack-adaptive-params", _run("--attack", "adaptive:steps=3"), "adaptive"),
    ("run-attack-norm", _run("--attack", "cw-l2"), "does not support the linf threat model"),
    # bench run: threat model
    ("run-norm-unknown", _run("--norm", "l3"), "l3"),
    ("run-eps-text", _run("--eps", "big"), "big"),
    ("run-eps-zero", _run("--eps", "0"), "ε"),
    ("run-eps-negative", _run("--eps", "-0.1"), "ε"),
    ("run-eps-too-big", _run("--eps", "2"), "ε"),
    ("run-eps-nan", _run("--eps", "nan"), "ε"),
    ("run-eps-div-zero", _run("--eps", "8/0"), "8/0"),
    ("run-eps-and-sweep", _run("--eps", "0.1", "--eps-sweep", "0.1,0.2"), "not allowed with argument"),
    ("run-eps-sweep-empty", _run("--eps-sweep", ""), "at least two distinct"),
    ("run-eps-sweep-one", _run("--eps-sweep", "0.1"), "at least two distinct"),
    ("run-eps-sweep-bad", _run("--eps-sweep", "0.1,x"), "x"),
    ("run-cascade-sweep", _run("--cascade", "--eps-sweep", "0.1,0.2"), "--cascade answers the worst case only"),
    ("run-cascade-individual", _run("--cascade", "--individual"), "not allowed with argument"),
    # bench run: sizes, seeds, devices
    ("run-n-text", _run("--n", "ten"), "'ten' is not a whole number"),
    ("run-n-zero", ["run", "--defense", "standard", "--n", "0"], "must be at least 1"),
    ("run-n-negative", ["run", "--defense", "standard", "--n", "-3"], "must be at least 1"),
    ("run-n-too-big", ["run", "--defense", "standard", "--attack", "fgsm", "--n", "10001", "--results-dir",
                       "{tmp}/r"], "between 1 and 10000"),
    ("run-points-zero", ["run", "--defense", "standard", "--points", "0"], "must be at least 1"),
    ("run-sample-seed-negative", _run("--sample-seed", "-1"), "outside the seed range"),
    ("run-sample-seed-text", _run("--sample-seed", "x"), "not a whole number"),
    ("run-sample-seed-without-n", ["run", "--defense", "standard", "--sample-seed", "3"], "give --n too"),
    ("run-seed-negative", _run("--seed", "-1"), "outside the seed range"),
    ("run-seed-huge", _run("--seed", str(2**70)), "outside the seed range"),
    ("run-seed-text", _run("--seed", "0x10"), "not a whole number"),
    ("run-batch-zero", _run("--batch-size", "0"), "must be at least 1"),
    ("run-device-unknown", _run("--device", "tpu"), "invalid --device 'tpu'"),
    ("run-device-cuda", _run("--device", "cuda:3"), "CUDA is not available"),
    ("run-precision-unknown", _run("--precision", "fp8"), "invalid choice"),
    ("run-fp16-cpu", _run("--precision", "fp16", "--device", "cpu"), "fp16 needs CUDA"),
    ("run-tf32-cpu", _run("--precision", "tf32", "--device", "cpu"), "tf32 needs CUDA"),
    ("run-device-kind", _run("--device", "mps"), "invalid --device"),
    # bench run: outputs and resume
    ("run-results-dir-file", [*RUN[:-1], "{bad}/a-file"], "is a file, not a folder"),
    ("run-results-dir-under-file", [*RUN[:-1], "{bad}/a-file/runs"], "{bad}/a-file is a file"),
    ("run-results-dir-under-file2", [*RUN[:-1], "{bad}/a-file/x/records"], "a-file is a file, not a folder"),
    ("run-results-dir-proc", [*RUN[:-1], "/proc/bench-results/runs"], "not writable"),
    ("run-resume-nothing", _run("--resume"), "no interrupted run"),
    ("run-resume-corrupt", _run("--resume", "--seed", "7", "--n", "40"), "is corrupt"),
    # bench train
    ("train-no-defense", ["train"], "needs --defense"),
    ("train-arch-no-module", ["train", "--defense", "pgd-at", "--arch", "nosuchpkg.nets:make", "--out", "{tmp}/m.pt"],
     "no module 'nosuchpkg'"),
    ("train-arch-needs-more", ["train", "--defense", "spat", "--arch", "tests.user_models:small_mlp", "--out",
                               "{tmp}/m.pt"], "spat needs a cosine-head architecture"),
    ("train-arch-wrong-input", ["train", "--defense", "pgd-at", "--arch", "tests.user_models:cifar_shaped_mlp",
                                "--out", "{tmp}/m.pt"], "cannot take a batch of fashion-mnist images"),
    ("train-arch-not-callable", ["train", "--defense", "pgd-at", "--arch", "tests.user_models:NOT_A_FACTORY",
                                 "--out", "{tmp}/m.pt"], "is not callable"),
    ("train-unknown-budget", ["train", "--defense", "trades", "--budget", "fulll"], "Did you mean: full"),
    ("train-bad-device", ["train", "--defense", "trades", "--device", "tpu"], "invalid --device"),
    ("train-cuda-missing", ["train", "--defense", "trades", "--device", "cuda:3"], "CUDA"),
    # bench campaign import: archives from another machine
    ("campaign-no-verb", ["campaign"], "required: verb"),
    ("campaign-no-archive", ["campaign", "import"], "the following arguments are required: ARCHIVE"),
    ("campaign-missing", [*CAMPAIGN, "{tmp}/nowhere.tar.gz"], "no campaign archive"),
    ("campaign-not-tar", [*CAMPAIGN, "{bad}/garbage.pt"], "not a readable campaign archive"),
    ("campaign-folder", [*CAMPAIGN, "{bad}/folder"], "not a readable campaign archive"),
    ("campaign-truncated", [*CAMPAIGN, "{bad}/campaign/truncated.tar.gz"], "corrupt"),
    ("campaign-traversal", [*CAMPAIGN, "{bad}/campaign/traversal.tar.gz"], "unsafe member name"),
    ("campaign-absolute", [*CAMPAIGN, "{bad}/campaign/absolute.tar.gz"], "unsafe member name"),
    ("campaign-symlink", [*CAMPAIGN, "{bad}/campaign/symlink.tar.gz"], "link or special file"),
    ("campaign-unexpected", [*CAMPAIGN, "{bad}/campaign/unexpected.tar.gz"], "unexpected member setup.py"),
    ("campaign-bad-record", [*CAMPAIGN, "{bad}/campaign/bad-record.tar.gz"], "not a valid run record"),
    ("campaign-no-sidecar", [*CAMPAIGN, "{bad}/campaign/no-sidecar.tar.gz"], "without its sidecar"),
    ("campaign-sha", [*CAMPAIGN, "{bad}/campaign/sha.tar.gz"], "does not match its sidecar"),
    ("campaign-code", [*CAMPAIGN, "{bad}/campaign/code.tar.gz"], "could run code"),
    ("campaign-recipe-checkpoint", [*CAMPAIGN, "{bad}/campaign/recipe.tar.gz"], "never replaces the committed"),
    ("campaign-unwritable", ["campaign", "import", "--results-dir", "/proc/runs", "--checkpoint-dir", "{tmp}/c",
                             "{bad}/campaign/good.tar.gz"], "/proc"),
    ("train-unknown-defense", ["train", "--defense", "tradez"], "Did you mean: trades"),
    ("train-unknown-dataset", ["train", "--defense", "trades", "--dataset", "fmnist"], "unknown dataset"),
    ("train-no-recipe", ["train", "--defense", "trades", "--dataset", "svhn"], "no recipe for svhn"),
    ("train-unknown-arch", ["train", "--defense", "trades", "--arch", "vgg99", "--out", "{tmp}/t.pt"],
     "unknown architecture 'vgg99'"),
    ("train-epochs-zero", ["train", "--defense", "trades", "--epochs", "0"], "must be at least 1"),
    ("train-epochs-text", ["train", "--defense", "trades", "--epochs", "two"], "not a whole number"),
    ("train-batch-zero", ["train", "--defense", "trades", "--batch-size", "0"], "must be at least 1"),
    ("train-lr-zero", ["train", "--defense", "trades", "--lr", "0", "--out", "{tmp}/t.pt"], "lr be positive"),
    ("train-lr-nan", ["train", "--defense", "trades", "--lr", "nan"], "not a finite number"),
    ("train-lr-text", ["train", "--defense", "trades", "--lr", "fast"], "not a number"),
    ("train-momentum-negative", ["train", "--defense", "trades", "--momentum", "-0.9"], "must not be negative"),
    ("train-wd-negative", ["train", "--defense", "trades", "--weight-decay", "-1"], "must not be negative"),
    ("train-eps-big", ["train", "--defense", "trades", "--eps", "3", "--out", "{tmp}/t.pt"], "eps must lie in [0, 1]"),
    ("train-eps-inf", ["train", "--defense", "trades", "--eps", "inf"], "not a finite number"),
    ("train-steps-zero", ["train", "--defense", "trades", "--attack-steps", "0"], "must be at least 1"),
    ("train-points-zero", ["train", "--defense", "trades", "--train-points", "0"], "must be at least 1"),
    ("train-max-points-zero", ["train", "--defense", "trades", "--max-train-points", "0"], "must be at least 1"),
    ("train-seed-negative", ["train", "--defense", "trades", "--seed", "-5"], "outside the seed range"),
    ("train-param-form", ["train", "--defense", "trades", "--param", "beta"], "write KEY=VALUE"),
    ("train-param-unknown", ["train", "--defense", "trades", "--param", "gamma=2", "--out", "{tmp}/t.pt"], "gamma"),
    ("train-param-value", ["train", "--defense", "trades", "--param", "beta=lots", "--out", "{tmp}/t.pt"], "beta"),
    ("train-init-missing", ["train", "--defense", "afd", "--init", "{bad}/nope.pt", "--out", "{tmp}/t.pt",
                            "--max-train-points", "64"], "does not exist"),
    ("train-init-garbage", ["train", "--defense", "afd", "--init", "{bad}/truncated.pt", "--out", "{tmp}/t.pt",
                            "--max-train-points", "64"], "sha256"),
    ("train-out-exists", ["train", "--defense", "trades", "--out", str(PGD_AT)], "pass --overwrite"),
    ("train-default-out-exists", ["train", "--defense", "trades"], "pass --overwrite"),
    ("train-out-folder", ["train", "--defense", "trades", "--out", "{bad}/folder"], "is a folder, not a file name"),
    ("train-out-unwritable", ["train", "--defense", "trades", "--out", "/proc/bench/t.pt"], "not writable"),
    ("train-out-under-file", ["train", "--defense", "trades", "--out", "{bad}/a-file/t.pt"],
     "is a file, not a folder"),
    ("train-data-dir-garbage", ["train", "--defense", "trades", "--out", "{tmp}/t.pt", "--data-dir", "{bad}/data"],
     "cannot be read"),
    ("train-resume-corrupt", ["train", "--defense", "trades", "--out", "{tmp}/state/t.pt", "--resume",
                              "--max-train-points", "64"], "training state"),
    # bench results and bench leaderboard
    ("results-missing-dir", ["results", "--results-dir", "{tmp}/nowhere"], "no results folder"),
    ("results-dir-file", ["results", "--results-dir", "{bad}/a-file"], "no results folder"),
    ("results-format", ["results", "--format", "xml"], "invalid choice"),
    ("results-purpose", ["results", "--purpose", "fun"], "invalid choice"),
    ("results-unknown-defense", ["results", "--results-dir", str(REPO / "results" / "runs"), "--defense", "ancr"],
     "no results with defense 'ancr'"),
    ("results-corrupt-record", ["results", "--results-dir", "{bad}/corrupt-runs/runs"], "corrupt record"),
    ("leaderboard-missing-dir", ["leaderboard", "--results-dir", "{tmp}/nowhere"], "no results folder"),
    ("leaderboard-corrupt-record", ["leaderboard", "--results-dir", "{bad}/corrupt-runs/runs"], "corrupt record"),
    ("leaderboard-html-missing-dir", ["leaderboard", "--html", "--results-dir", "{tmp}/nowhere"], "no results folder"),
    ("leaderboard-html-corrupt-record", ["leaderboard", "--html", "--results-dir", "{bad}/corrupt-runs/runs"], "corrupt record"),
    *[(f"results-record-{name}", ["results", "--results-dir", f"{{bad}}/records/{name}/runs"], "record")
      for name in BAD_RECORDS],
    *[(f"leaderboard-record-{name}", ["leaderboard", "--results-dir", f"{{bad}}/records/{name}/runs"], "run record")
      for name in ("eps-string", "flags-null", "clean-disagrees", "robust-not-clean")],
    # bench sweep
    ("sweep-unknown-dataset", ["sweep", "--dataset", "fmnist"], "unknown dataset"),
    ("sweep-unknown-attack", ["sweep", "--attack", "fgsmm"], "Did you mean: fgsm"),
    ("sweep-ckpts-missing", ["sweep", "--checkpoints-dir", "{tmp}/none", "--results-dir", "{tmp}/runs"],
     "{tmp}/none"),
    ("sweep-ckpts-empty", ["sweep", "--checkpoints-dir", "{bad}/nockpts", "--results-dir", "{tmp}/runs"],
     "no checkpoint"),
    ("sweep-eps-bad", ["sweep", "--eps", "x"], "x"),
    ("sweep-weights-without-model", ["sweep", "--weights", "{bad}/nope.pt"], "only apply to --model"),
    ("sweep-model-and-folder", ["sweep", "--model", "examples.toy_models:plain_smallcnn", "--checkpoints-dir",
                                "{bad}/nockpts"], "not allowed with argument"),
    ("sweep-model-missing-module", ["sweep", "--model", "nowhere_pkg.nets:make", "--results-dir", "{tmp}/runs"],
     "cannot import"),
    ("sweep-eps-sweep-empty", ["sweep", "--eps-sweep", ""], "at least two distinct"),
    ("sweep-n-zero", ["sweep", "--n", "0"], "must be at least 1"),
    ("sweep-seed-negative", ["sweep", "--seed", "-1"], "outside the seed range"),
    ("sweep-sample-seed-alone", ["sweep", "--sample-seed", "1", "--results-dir", "{tmp}/runs"], "give --n too"),
    ("sweep-norm", ["sweep", "--norm", "l1"], "l1"),
    ("sweep-precision-unknown", ["sweep", "--precision", "fp8"], "invalid choice: 'fp8'"),
    ("sweep-fp16-cpu", ["sweep", "--precision", "fp16", "--device", "cpu", "--attack", "fgsm", "--n", "5",
                        "--results-dir", "{tmp}/runs"], "fp16 needs CUDA"),
    ("sweep-results-dir-file", ["sweep", "--attack", "fgsm", "--n", "5", "--results-dir", "{bad}/a-file"],
     "is a file, not a folder"),
    # bench check
    ("check-typo", ["check", "--defense", "pgdat"], "Did you mean: pgd-at"),
    ("check-ckpt-missing", ["check", "--checkpoint", "{bad}/nope.pt"], "does not exist"),
    ("check-ckpt-folder", ["check", "--checkpoint", "{bad}/folder"], "is a directory"),
    ("check-baselines-file", ["check", "--defense", "standard", "--baselines", "{bad}/a-file"], "is a file"),
    ("check-baselines-missing", ["check", "--defense", "standard", "--baselines", "{tmp}/none"],
     "no baselines folder"),
    ("check-no-reason", ["check", "--defense", "standard", "--update-baseline", "--baselines", "{tmp}/b"],
     "needs --reason"),
    ("check-n-zero", ["check", "--n", "0"], "must be at least 1"),
    ("check-attack", ["check", "--attack", "pgdd"], "Did you mean: pgd"),
    ("check-dataset", ["check", "--dataset", "fmnist"], "unknown dataset"),
    ("check-seed", ["check", "--seed", "-2"], "outside the seed range"),
    ("check-label-without-model", ["check", "--label", "mine"], "give --model too"),
    ("check-weights-without-model", ["check", "--weights", "{bad}/nope.pt"], "only apply to --model"),
    ("check-model-missing-module", ["check", "--model", "nowhere_pkg.nets:make"], "cannot import"),
    ("check-model-missing-file", ["check", "--model", "{bad}/nope.pt2"], "does not exist"),
    ("check-model-weights-not-fit", ["check", "--model", "examples.toy_models:plain_smallcnn", "--weights",
                                     "{bad}/notfit.pt"], "does not fit"),
    ("check-corrupt-baseline", ["check", "--defense", "standard", "--baselines", "{bad}/baselines",
                                "--n", "5", "--attack", "fgsm"], "corrupt baseline"),
    ("run-draws-zero", _run("--allow-randomized", "--draws", "0"), "must be at least 1"),
    ("run-external-missing", [*RUN[:4], "external:{bad}/nope.adv.pt", *RUN[5:]], "does not exist"),
    # bench verify-adv
    ("verify-adv-missing", ["verify-adv", "--defense", "standard", "--adv", "{bad}/nope.adv.pt"], "does not exist"),
    ("verify-adv-folder", ["verify-adv", "--defense", "standard", "--adv", "{bad}/folder"], "folder"),
    ("verify-adv-text", ["verify-adv", "--defense", "standard", "--adv", "{bad}/text.pt"], "text"),
    ("verify-adv-list", ["verify-adv", "--defense", "standard", "--adv", "{bad}/list.pt"], "not a bench-adv dict"),
    ("verify-adv-checkpoint", ["verify-adv", "--defense", "standard", "--adv", "{bad}/notfit.pt"],
     "expected 'bench-adv'"),
    ("verify-adv-range", ["verify-adv", "--defense", "standard", "--adv", "{bad}/adv-range.adv.pt"], "0 … 9999"),
    ("verify-adv-twice", ["verify-adv", "--defense", "standard", "--adv", "{bad}/adv-twice.adv.pt"],
     "more than once"),
    ("verify-adv-eps", ["verify-adv", "--defense", "standard", "--adv", "{bad}/adv-eps.adv.pt"], "ε"),
    ("verify-adv-shape", ["verify-adv", "--defense", "standard", "--adv", "{bad}/adv-shape.adv.pt"], "same n"),
    ("verify-adv-cifar", ["verify-adv", "--defense", "standard", "--adv", "{bad}/adv-cifar.adv.pt"],
     "x_adv has shape (2, 3, 32, 32)"),
    ("verify-adv-train", ["verify-adv", "--defense", "standard", "--adv", "{bad}/adv-train.adv.pt"], "test-split"),
    ("verify-adv-comma", ["verify-adv", "--defense", "standard", "--adv", "{bad}/adv,comma.adv.pt"], "rename"),
    ("verify-adv-name", ["verify-adv", "--defense", "standard", "--adv", "{bad}/adv-range.adv.pt", "--name", "a,b"],
     "--name"),
    ("verify-adv-no-adv", ["verify-adv", "--defense", "standard"], "--adv"),
    ("verify-adv-results-dir-file", ["verify-adv", "--defense", "standard", "--adv", "{bad}/adv-range.adv.pt",
                                     "--results-dir", "{bad}/a-file"], "a-file"),
    # bench audit
    ("audit-unknown-defense", ["audit", "--defense", "ancar"], "Did you mean: ancra"),
    ("audit-model-missing", ["audit", "--model", "{bad}/nope.pt"], "does not exist"),
    ("audit-n-zero", ["audit", "--defense", "standard", "--n", "0"], "must be at least 1"),
    ("audit-standard-attack", ["audit", "--defense", "standard", "--standard", "pgdd"], "Did you mean: pgd"),
    ("audit-adaptive-attack", ["audit", "--defense", "standard", "--adaptive", "ra-auxx", "--results-dir",
                               "{tmp}/runs"], "ra-aux"),
    ("audit-strength", ["audit", "--defense", "standard", "--strength", "pgd:steps=x", "--results-dir",
                        "{tmp}/runs"], "is not a valid int"),
    ("audit-baseline-attack", ["audit", "--defense", "standard", "--baseline", "nois", "--results-dir", "{tmp}/runs"],
     "Did you mean: noise"),
    ("audit-binarization-points", ["audit", "--defense", "standard", "--binarization-points", "-1"],
     "must be at least 0"),
    ("audit-binarization-attack", ["audit", "--defense", "standard", "--binarization-attacks", "apdg",
                                   "--results-dir", "{tmp}/runs"], "Did you mean: apgd"),
    ("audit-eps", ["audit", "--defense", "standard", "--eps", "-1"], "ε"),
    ("audit-seed", ["audit", "--defense", "standard", "--seed", "-1"], "outside the seed range"),
    ("audit-results-dir-file", ["audit", "--defense", "standard", "--results-dir", "{bad}/a-file"],
     "is a file, not a folder"),
    ("audit-audits-dir-file", ["audit", "--defense", "standard", "--results-dir", "{tmp}/runs", "--audits-dir",
                               "{bad}/a-file", "--n", "5"], "is a file, not a folder"),
    ("audit-tuple-model", ["audit", "--model", "tests.user_models:tuple_output", "--results-dir", "{tmp}/runs",
                           "--n", "5"], "returns a tuple"),
    # bench inspect
    ("inspect-unknown-name", ["inspect", "ancr"], "Did you mean: ancra"),
    ("inspect-missing-file", ["inspect", "{bad}/nope.pt"], "does not exist"),
    ("inspect-folder", ["inspect", "{bad}/folder"], "is a directory"),
    ("inspect-empty", ["inspect", "{bad}/empty.pt"], "is an empty file"),
    ("inspect-html", ["inspect", "{bad}/html.pt"], "HTML page"),
    ("inspect-dataset", ["inspect", "standard", "--dataset", "fmnist"], "unknown dataset"),
    ("inspect-norm", ["inspect", "standard", "--norm", "l5"], "l5"),
    ("inspect-eps", ["inspect", "standard", "--eps", "zero"], "zero"),
    ("inspect-mean", ["inspect", "examples.toy_models:plain_smallcnn", "--mean", "x", "--std", "1"],
     "comma-separated numbers"),
    ("inspect-robustbench-unknown", ["inspect", "robustbench:Nope2020", "--dataset", "cifar10"],
     "no RobustBench model"),
    # bench ls and bench data
    ("ls-unknown", ["ls", "attack"], "Did you mean: attacks"),
    ("ls-missing", ["ls"], "required"),
    ("data-unknown-action", ["data", "get", "cifar10"], "invalid choice"),
    ("data-unknown-dataset", ["data", "fetch", "imagenet"], "unknown dataset 'imagenet'"),
    ("data-dir-file", ["data", "fetch", "cifar10", "--data-dir", "{bad}/a-file"], "is a file, not a folder"),
    ("data-no-network", ["data", "fetch", "mnist", "--data-dir", "{tmp}/d"], "needs network access"),
    # --- issue 29: what is admitted is listed; everything else is one line, exit 2, at once ---
    # FIFOs and devices where a file belongs: refused before any read that could hang or never end
    ("run-ckpt-fifo", ["run", "--checkpoint", "{bad}/fifo.pt"], "not a regular file"),
    ("run-ckpt-dev-zero", ["run", "--checkpoint", "{bad}/zero.pt"], "not a regular file"),
    ("run-model-fifo", _user("{bad}/fifo.pt"), "not a regular file"),
    ("run-model-dev-zero", _user("{bad}/zero.pt", "--trust-checkpoint"), "not a regular file"),
    ("run-weights-fifo", _user(FACTORY, "--weights", "{bad}/fifo.pt"), "not a regular file"),
    ("run-weights-dev-zero", _user(FACTORY, "--weights", "{bad}/zero.pt"), "not a regular file"),
    ("run-transfer-fifo", _run("--attack", "transfer:{bad}/fifo.pt"), "not a regular file"),
    ("run-external-fifo", [*RUN[:4], "external:{bad}/fifo.adv.pt", *RUN[5:]], "not a regular file"),
    ("train-init-fifo", ["train", "--defense", "afd", "--init", "{bad}/fifo.pt", "--out", "{tmp}/t.pt",
                         "--max-train-points", "64"], "not a regular file"),
    ("train-init-dev-zero", ["train", "--defense", "afd", "--init", "{bad}/zero.pt", "--out", "{tmp}/t.pt",
                             "--max-train-points", "64"], "not a regular file"),
    ("inspect-fifo", ["inspect", "{bad}/fifo.pt"], "not a regular file"),
    ("check-ckpt-fifo", ["check", "--checkpoint", "{bad}/fifo.pt"], "not a regular file"),
    ("audit-model-fifo", ["audit", "--model", "{bad}/fifo.pt"], "not a regular file"),
    ("verify-adv-fifo", ["verify-adv", "--defense", "standard", "--adv", "{bad}/fifo.adv.pt"], "not a regular file"),
    ("campaign-fifo", [*CAMPAIGN, "{bad}/campaign/fifo.tar.gz"], "not a regular file"),
    ("campaign-dev-zero", [*CAMPAIGN, "{bad}/campaign/zero.tar.gz"], "not a regular file"),
    # JSON beyond what this suite writes: nesting, digits, size, a FIFO or a device named *.json
    *[(f"{command}-json-{name}", [command, "--results-dir", f"{{bad}}/json-{name}/runs"], fragment)
      for command in ("results", "leaderboard")
      for name, fragment in (("deep", "nested deeper than"), ("bigint", "digits (at most 18)"),
                             ("fifo", "not a regular file"), ("zero", "not a regular file"),
                             ("huge", "larger than 64 MiB"))],
    ("sweep-json-deep", ["sweep", "--attack", "fgsm", "--n", "5", "--checkpoints-dir", "{bad}/nockpts",
                         "--results-dir", "{bad}/json-deep/runs"], "no checkpoint"),
    *[(f"check-baseline-{name}", ["check", "--defense", "standard", "--baselines", f"{{bad}}/baselines-{name}"],
       fragment)
      for name, fragment in (("deep", "nested deeper than"), ("fifo", "not a regular file"),
                             ("bigint", "a whole number of 41 digits"), ("flags", "must be 0/1 characters only"),
                             ("attack", "its protocol's attacks"), ("batch", "protocol.batch_size"))],
    *[(f"run-sidecar-{name}", ["run", "--checkpoint", f"{{bad}}/sidecar-{name}.pt", "--attack", "fgsm", "--n", "5",
                               "--results-dir", "{tmp}/r"], fragment)
      for name, fragment in (("deep", "nested deeper than"), ("fifo", "not a regular file"),
                             ("bigint", "a whole number of 41 digits"))],
    # records: only values a record of ours can hold
    *[(f"leaderboard-record-{name}", ["leaderboard", "--results-dir", f"{{bad}}/records/{name}/runs"], fragment)
      for name, fragment in (("index-beyond-split", "beyond the 10000 test points"),
                             ("points-beyond-split", "beyond the 10000 test points"),
                             ("index-sha-mismatch", "not the hash of per_example.index"),
                             ("sha256-markup", "model.sha256"), ("sha256-upper", "model.sha256"),
                             ("date-markup", "provenance.date"), ("date-words", "provenance.date"),
                             ("dataset-unknown", "data.dataset"), ("dataset-traversal", "data.dataset"),
                             ("split-train", "data.split"), ("label-beyond-classes", "beyond the 10"))],
    # audits are validated like records
    *[(f"leaderboard-audit-{name}", ["leaderboard", "--results-dir", f"{{bad}}/audits/{name}/runs"], fragment)
      for name, fragment in (("verdict-unknown", "verdict"), ("robust-missing", "robust: is missing"),
                             ("pair-over-n", "201 robust of 200"), ("pair-text", "robust.standard.aa"),
                             ("sha-not-hex", "model.sha256"), ("date-markup", "date"),
                             ("checks-not-list", "checks"), ("binarization-text", "binarization"),
                             ("n-huge", "a whole number of 31 digits"), ("dataset-unknown", "dataset"),
                             ("deep", "nested deeper than"), ("fifo", "not a regular file"))],
    # resume states: a state that does not match its run is refused, never used
    *[(f"run-resume-{name}", _run("--resume", "--seed", "7", "--n", "40"), fragment)
      for name, fragment in (("fifo", "not a regular file"), ("deep", "nested deeper than"),
                             ("misclassified-robust", "alive or broken, but misclassified clean"),
                             ("alive-and-broken", "alive, but broken by"), ("other-attacks", "names other attacks"),
                             ("too-many-points", "alive"), ("stage-beyond", "stages, the state says 9"),
                             ("batch-beyond", "batches, the state says 99"))],
    # data folders whose files disagree, or that unpack without bound
    *[(f"run-data-{name}", ["run", "--defense", "standard", "--attack", "fgsm", "--n", "5", "--data-dir",
                            f"{{bad}}/data-{name}", "--results-dir", "{tmp}/r"], fragment)
      for name, fragment in (("mismatch", "10000 images but 9999 labels"), ("classes", "labels outside the 10"),
                             ("oversize", "10001 test points"), ("bomb", "more than 256 MiB"))],
    # campaign archives: paths only from registered names, caps while streaming, nothing read twice
    *[(f"campaign-sidecar-{name}", [*CAMPAIGN, f"{{bad}}/campaign/sidecar-{name}.tar.gz"], fragment)
      for name, fragment in (("dataset-up", "not a registered dataset"), ("defense-up", "not a registered defense"),
                             ("arch-absolute", "not a registered arch"), ("budget-number", "not a registered budget"),
                             ("budget-up", "not a registered budget"), ("defense-list", "not a registered defense"),
                             ("dataset-missing", "not a registered dataset"),
                             ("defense-unknown", "not a registered defense"))],
    ("campaign-deep-record", [*CAMPAIGN, "{bad}/campaign/deep-record.tar.gz"], "nested deeper than"),
    ("campaign-bigint-record", [*CAMPAIGN, "{bad}/campaign/bigint-record.tar.gz"], "digits (at most 18)"),
    ("campaign-record-twice", [*CAMPAIGN, "{bad}/campaign/twice-a.tar.gz", "{bad}/campaign/twice-b.tar.gz"],
     "a second record named r.json"),
    ("campaign-many-members", [*CAMPAIGN, "{bad}/campaign/many.tar.bz2"], "more than 10000 members"),
    ("campaign-xz-deep", [*CAMPAIGN, "{bad}/campaign/xz.tar.xz"], "nested deeper than"),
    # numbers: range-checked where they are parsed
    *[(f"run-eps-{name}", _run("--eps", value), "invalid ε")
      for name, value in (("overflow", "1e309"), ("overflow-mantissa", "0.1e400"), ("huge-exponent", "1e999999999"),
                          ("hex", "0x10"), ("ratio-by-zero", "1/0"), ("huge-ratio", "1" * 40 + "/3"),
                          ("underscore", "1_0"), ("unicode-digit", "\u0661"))],
    ("run-eps-sweep-overflow", _run("--eps-sweep", "0.1,1e309"), "invalid ε"),
    *[(f"run-{flag.strip('-')}-{name}", _run(flag, value), fragment)
      for flag in ("--n", "--batch-size")
      for name, value, fragment in (("2-to-70", str(2**70), "too large"), ("2-to-31", str(2**31), "too large"),
                                    ("40-digits", "9" * 40, "too large"), ("41-digits", "9" * 41, "not a whole number"),
                                    ("exponent", "1e3", "not a whole number"))],
    ("run-seed-exponent", _run("--seed", "1e3"), "not a whole number"),
    # certification: methods allow-listed, L∞ at one ε, a finite positive time limit, bounded models only
    ("run-certify-unknown", _run("--certify", "ibpp"), "unknown certification method 'ibpp'. Did you mean: ibp"),
    ("run-certify-empty", _run("--certify", ","), "name at least one certification method"),
    ("run-certify-l2", _run("--certify", "ibp", "--norm", "l2", "--eps", "0.5"), "bounds L∞ balls only"),
    ("run-certify-sweep", _run("--certify", "crown", "--eps-sweep", "0.1,0.2"), "certifies at one ε"),
    *[(f"run-certify-time-{name}", _run("--certify", "milp", "--certify-time-limit", value), fragment)
      for name, value, fragment in (("zero", "0", "must be positive"), ("negative", "-1", "must be positive"),
                                    ("inf", "inf", "not a finite number"), ("nan", "nan", "not a finite number"))],
    ("run-certify-residual", ["run", "--defense", "ancra", "--attack", "fgsm", "--n", "5", "--certify", "ibp",
                              "--results-dir", "{tmp}/runs"], "cannot bound layer"),
    ("run-certify-milp-maxpool", _run("--certify", "milp"), "is a max-pool (bound it with ibp or crown)"),
    *[(f"certify-{name}", ["certify", "--defense", defense, "--n", "5", "--results-dir", "{tmp}/runs", *extra],
       fragment)
      for name, defense, extra, fragment in (
          ("unknown-method", "ibp", ["--method", "crwon"], "unknown certification method 'crwon'. Did you mean: crown"),
          ("empty-method", "ibp", ["--method", ""], "name at least one certification method"),
          ("time-zero", "ibp", ["--method", "milp", "--time-limit", "0"], "must be positive"),
          ("time-nan", "ibp", ["--method", "milp", "--time-limit", "nan"], "not a finite number"),
          ("l2", "ibp", ["--norm", "l2", "--eps", "0.5"], "bounds L∞ balls only"),
          ("no-attack", "ibp", ["--attack", ""], "attack"),
          ("unknown-attack", "ibp", ["--attack", "pgdd"], "Did you mean: pgd"),
          ("cosine-head", "spat", [], "cannot bound layer"),
          ("milp-wide", "ibp", ["--method", "milp"], "too large for milp"),
          ("eps-sweep", "ibp", ["--eps-sweep", "0.1,0.2"], "unrecognized arguments"))],
    *[(f"run-attack-{name}", _run("--attack", spec), fragment)
      for name, spec, fragment in (("steps-huge", "pgd:steps=" + "9" * 23, "is not a valid int"),
                                   ("steps-exponent", "pgd:steps=1e3", "is not a valid int"),
                                   ("step-inf", "pgd:rel_step=1e999", "is not a valid float"),
                                   ("step-nan", "pgd:rel_step=nan", "is not a valid float"),
                                   ("apgd-steps-huge", "apgd:steps=10000000000", "is not a valid int"),
                                   ("restarts-huge", "pgd:restarts=" + "1" * 12, "is not a valid int"))],
    ("train-epochs-huge", ["train", "--defense", "trades", "--epochs", str(2**40)], "too large"),
    ("train-batch-huge", ["train", "--defense", "trades", "--batch-size", str(2**64)], "too large"),
    ("train-lr-overflow", ["train", "--defense", "trades", "--lr", "1e999"], "not a finite number"),
    ("sweep-n-huge", ["sweep", "--n", str(2**64)], "too large"),
    # the cluster jobs' options (bench/cluster/options.py): sbatch lines admit one word of known characters
    ("sweep-executor-unknown", ["sweep", "--executor", "pbs"], "invalid choice: 'pbs'"),
    ("sweep-job-option-alone", ["sweep", "--timeout-min", "5"], "add --executor local or --executor slurm"),
    ("sweep-local-partition", ["sweep", "--executor", "local", "--slurm-partition", "gpu"], "are SLURM's"),
    ("sweep-sbatch-no-value", ["sweep", "--executor", "slurm", "--sbatch", "mem"], "expected KEY=VALUE"),
    ("sweep-sbatch-newline", ["sweep", "--executor", "slurm", "--sbatch", "mem=1G\n#SBATCH --wrap=id"],
     "no spaces, quotes or newlines"),
    ("sweep-sbatch-quote", ["sweep", "--executor", "slurm", "--sbatch", "comment='$(id)'"], "no spaces, quotes"),
    ("sweep-sbatch-managed", ["sweep", "--executor", "slurm", "--sbatch", "partition=gpu"], "use those"),
    ("sweep-sbatch-key", ["sweep", "--executor", "slurm", "--sbatch", "Mem;x=1"], "lower-case letters"),
    ("sweep-partition-space", ["sweep", "--executor", "slurm", "--slurm-partition", "a b"], "letters, digits"),
    ("sweep-timeout-zero", ["sweep", "--executor", "slurm", "--timeout-min", "0"], "must be at least 1"),
    ("sweep-gpus-negative", ["sweep", "--executor", "local", "--gpus-per-job", "-1"], "-1"),
    ("sweep-parallelism-huge", ["sweep", "--executor", "slurm", "--array-parallelism", str(2**64)], "too large"),
    ("sweep-status-force", ["sweep", "--status", "--force"], "--status runs nothing"),
    *[(f"sweep-status-ledger-{name}", ["sweep", "--status", "--attack", "fgsm", "--n", "5", "--results-dir",
                                       f"{{bad}}/ledger-{name}/runs"], fragment)
      for name, fragment in (("missing", "not a sweep ledger entry"), ("extra", "not a sweep ledger entry"),
                             ("type", "has the wrong type"), ("state", "unknown job state 'won'"))],
    ("sweep-eps-overflow", ["sweep", "--eps", "1e309"], "invalid ε"),
    ("check-n-huge", ["check", "--n", str(2**64)], "too large"),
    ("audit-n-huge", ["audit", "--defense", "standard", "--n", str(2**64)], "too large"),
    ("audit-eps-overflow", ["audit", "--defense", "standard", "--eps", "1e309"], "invalid ε"),
    ("inspect-eps-overflow", ["inspect", "standard", "--eps", "1e309"], "invalid ε"),
    # the system says no: a path component beyond NAME_MAX
    ("run-results-dir-long-name", [*RUN[:-1], "{tmp}/" + "a" * 300 + "/runs"], "File name too long"),
    ("train-out-long-name", ["train", "--defense", "trades", "--out", "{tmp}/" + "a" * 300 + ".pt"],
     "File name too long"),
    ("check-baselines-long-name", ["check", "--defense", "standard", "--update-baseline", "--reason", "x", "--n", "5",
                                   "--attack", "fgsm", "--baselines", "{tmp}/" + "b" * 300], "File name too long"),
]


def _fill(argv: list[str], bad: Path, tmp: Path) -> list[str]:
    return [a.replace("{bad}", str(bad)).replace("{tmp}", str(tmp)) for a in argv]


def _unreachable(self, address):
    raise OSError(errno.ENETUNREACH, "Network is unreachable")


CASE_TIMEOUT_S = 120  # the slowest honest case takes seconds; a hang is a failure, not a stuck suite


def _hang(signum, frame):
    raise TimeoutError(f"the case ran past {CASE_TIMEOUT_S} s: a hang")


STATE_DAMAGES = ("corrupt", "fifo", "deep", "misclassified-robust", "alive-and-broken", "other-attacks",
                 "too-many-points", "stage-beyond", "batch-beyond")


def _damage_state(path: Path, how: str) -> None:
    """Edit the resume state an interrupted run left, as a hostile or careless hand would."""
    import os

    if how == "corrupt":
        path.write_text("{half a state")
        return
    if how == "fifo":
        path.unlink()
        os.mkfifo(path)
        return
    if how == "deep":
        path.write_bytes(DEEP)
        return
    state = json.loads(path.read_text())
    entry = state["progress"]["fgsm"]
    alive = entry["alive"]
    if how == "misclassified-robust":
        alive[alive.index(0)] = 1  # the run's clean predictions have misclassified points among the 40
    elif how == "alive-and-broken":
        entry["broken_by"][alive.index(1)] = "fgsm"
    elif how == "other-attacks":
        state["progress"]["pgd"] = dict(entry)
    elif how == "too-many-points":
        alive.append(1)
    elif how == "stage-beyond":
        entry["stage"] = 9
    elif how == "batch-beyond":
        entry["batch"] = 99
    path.write_text(json.dumps(state))


@pytest.mark.parametrize("argv, fragment", [pytest.param(a, f, id=i) for i, a, f in CASES])
def test_bad_input_is_one_line_and_exit_2(argv, fragment, corpus, tmp_path, monkeypatch, capsys, request):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(socket.socket, "connect", _unreachable)  # `bench data fetch` on a machine without network
    case = request.node.callspec.id
    if case.removeprefix("run-resume-") in STATE_DAMAGES:  # interrupt a run, damage the state it left
        def interrupt(*args, **kwargs):
            raise KeyboardInterrupt

        with monkeypatch.context() as patch:
            patch.setattr("bench.evaluation.harness._attack_and_record", interrupt)
            assert main(_fill([a for a in argv if a != "--resume"], corpus, tmp_path)) == 130
        capsys.readouterr()
        state_file, = (tmp_path / "runs" / ".state").glob("fashion-mnist-standard-*.json")
        _damage_state(state_file, case.removeprefix("run-resume-"))
    if case == "train-resume-corrupt":
        (tmp_path / "state").mkdir()
        (tmp_path / "state" / "t.train-state.pt").write_bytes(b"PK\x03\x04 not a real zip")
    signal.signal(signal.SIGALRM, _hang)
    signal.alarm(CASE_TIMEOUT_S)
    try:
        code = main(_fill(argv, corpus, tmp_path))
    except SystemExit as exc:
        code = exc.code
    finally:
        signal.alarm(0)
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out
    assert code == 2, f"exit {code}: {err}{out[-500:]}"
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert _fill([fragment], corpus, tmp_path)[0].lower() in lines[0].lower(), lines[0]


def test_a_bad_record_leaves_every_derived_file_untouched(corpus, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(corpus / "records" / "eps-string" / "runs", runs)
    good = json.loads(RECORD.read_text())
    (runs / "2026-11-20T000000Z-good.json").write_text(json.dumps(good))
    (tmp_path / "results.csv").write_text("before\n")
    assert main(["leaderboard", "--results-dir", str(runs)]) == 2
    assert (tmp_path / "results.csv").read_text() == "before\n"
    assert not (tmp_path / "LEADERBOARD.md").exists()


def test_the_corpus_is_large_and_covers_every_subcommand():
    ids = [case_id for case_id, _, _ in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 150
    for command in ("run", "train", "results", "leaderboard", "sweep", "check", "audit", "inspect", "ls", "data",
                    "campaign", "verify-adv"):
        assert any(argv[:1] == [command] for _, argv, _ in CASES), command


def test_inspect_reports_a_failed_guard_and_exits_1(capsys):
    assert main(["inspect", "tests.user_models:tuple_output"]) == 1
    assert "FAILED: the model returns a tuple, not a tensor of logits" in capsys.readouterr().out


def test_a_full_disk_while_writing_a_record_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    """ENOSPC from the file system at the record's write: exit 2, one line, no record, no temp file."""
    import os

    real_fsync = os.fsync

    def full(fd):
        if "/.state/" not in os.readlink(f"/proc/self/fd/{fd}"):  # the record, not the resume state
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("bench.files.os.fsync", full)
    code = main(_fill(RUN, tmp_path, tmp_path))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "No space left on device" in err, err
    assert [p.name for p in (tmp_path / "runs").iterdir() if p.name != ".state"] == []  # no record, no temp file
    assert len(list((tmp_path / "runs" / ".state").glob("*.json"))) == 1  # the progress, for --resume


@pytest.mark.subprocess
@pytest.mark.timeout(180)
def test_an_ascii_only_stdout_still_gets_the_table(tmp_path):
    """LANG=C or PYTHONIOENCODING=ascii: ε and ✗ come out escaped, not as a UnicodeEncodeError."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "bench", "ls", "attacks"], capture_output=True, cwd=tmp_path,
                         env={**__import__("os").environ, "PYTHONIOENCODING": "ascii"}, timeout=120)
    assert out.returncode == 0 and b"Traceback" not in out.stderr and b"aa-fast" in out.stdout, out.stderr
