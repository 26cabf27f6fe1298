"""Datasets as uint8 tensors in memory, their default threat models, and deterministic subsets.

Fashion-MNIST (the embedded default) is read straight from Debian's `dataset-fashion-mnist`
files, or from a torchvision-style folder; the others come through torchvision. A dataset is one
`DATASETS.add`: its shape, statistics, threat models and where its files come from.
"""

from __future__ import annotations

import enum
import gzip
import hashlib
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.errors import BenchError, first_line
from bench.files import ensure_writable_dir
from bench.registry import Registry
from bench.threat import Norm, ThreatModel

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_DATA_DIR = Path(os.environ.get("BENCH_DATA_DIR", "data"))


class Split(str, enum.Enum):
    TRAIN = "train"
    TEST = "test"


@dataclass(frozen=True)
class ImageSet:
    """Images kept as uint8 (N, C, H, W) to save memory; `batch` converts to float in [0, 1]."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: np.ndarray) -> ImageSet:
        index = torch.from_numpy(np.asarray(indices, dtype=np.int64))
        return ImageSet(self.images[index], self.labels[index])

    def batch(self, index: torch.Tensor | np.ndarray | slice) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(index, np.ndarray):
            index = torch.from_numpy(index)
        return self.images[index].float().div_(255.0), self.labels[index]


Loader = Callable[[Path | None, Split], ImageSet]


@dataclass(frozen=True)
class Torchvision:
    """A dataset torchvision can download (`bench data fetch`) and, unless the spec reads the files
    itself, read: `torchvision.datasets.<cls>`."""

    cls: str
    split_by_name: bool = False  # SVHN's constructor takes split="train"/"test", not train=True/False

    def dataset(self, root: Path, split: Split, download: bool) -> object:
        import torchvision

        make = getattr(torchvision.datasets, self.cls)
        if self.split_by_name:
            return make(str(root), split=split.value, download=download)
        return make(str(root), train=split is Split.TRAIN, download=download)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    num_classes: int
    shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    threat_models: tuple[ThreatModel, ...]  # the first is the default
    how_to_get: str
    loader: Loader | None = None  # reads the files; None: through `download`'s torchvision class
    download: Torchvision | None = None  # where `bench data fetch` gets it (None: it cannot)
    test_points: int = 10_000  # size of the test split: every record's indices lie below it

    def default_threat(self, norm: Norm | None = None) -> ThreatModel:
        for threat in self.threat_models:
            if norm is None or threat.norm is norm:
                return threat
        raise BenchError(
            f"{self.name} has no default ε for norm {norm.value if norm else '?'}: pass --eps"
        )

    def read(self, data_dir: Path | None, split: Split) -> ImageSet:
        if self.loader is not None:
            return self.loader(data_dir, split)
        assert self.download is not None, f"{self.name}: a dataset needs a loader or a torchvision source"
        return _torchvision_read(self, data_dir or DEFAULT_DATA_DIR, split)


DATASETS: Registry[DatasetSpec] = Registry("dataset")


MAX_IDX_BYTES = 256 << 20  # the largest IDX file of the MNIST family unpacks to 47 MB


def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): the MNIST family's format."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read(MAX_IDX_BYTES + 1)  # a gzip bomb stops here, not in memory
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise BenchError(f"{path} cannot be read ({exc}): a corrupt or truncated download?") from None
    if len(raw) > MAX_IDX_BYTES:
        raise BenchError(f"{path} unpacks to more than {MAX_IDX_BYTES >> 20} MiB: not a dataset file")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise BenchError(f"{path} is not an IDX file of unsigned bytes (corrupt download?)")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise BenchError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {data.size}")
    return data.reshape(dims)


def _find_idx(stem: str, folders: list[Path]) -> Path | None:
    for folder in folders:
        for name in (f"{stem}.gz", stem):
            if (folder / name).is_file():
                return folder / name
    return None


def idx_files(title: str, roots: tuple[Path, ...] = (), subfolders: tuple[str, ...] = ()) -> Loader:
    """A loader for the MNIST family's files (`train-images-idx3-ubyte[.gz]`, `t10k-labels-…`) in
    --data-dir, or else in `data/` and `roots`; each root also searched in `subfolders`."""

    def load(data_dir: Path | None, split: Split) -> ImageSet:
        prefix = "train" if split is Split.TRAIN else "t10k"
        searched = [data_dir] if data_dir else [DEFAULT_DATA_DIR, *roots]
        folders = [f for r in searched for f in (r, *(r / sub for sub in subfolders))]
        image_path = _find_idx(f"{prefix}-images-idx3-ubyte", folders)
        label_path = _find_idx(f"{prefix}-labels-idx1-ubyte", folders)
        if image_path is None or label_path is None:
            raise MissingData(f"{title} {split.value} files not found in {', '.join(map(str, searched))}.")
        images = torch.from_numpy(_read_idx(image_path).copy()).unsqueeze(1)
        labels = torch.from_numpy(_read_idx(label_path).astype(np.int64))
        return ImageSet(images, labels)

    return load


class MissingData(BenchError):
    """The dataset's files are not where a loader looked; `load` adds how to get them."""


def _torchvision_read(spec: DatasetSpec, root: Path, split: Split) -> ImageSet:
    assert spec.download is not None
    try:
        ds = spec.download.dataset(root, split, download=False)
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
        raise MissingData(f"{spec.name} not found in {root} ({exc}).") from None
    data = torch.as_tensor(np.asarray(ds.data))  # type: ignore[attr-defined]
    if data.ndim == 3:  # N, H, W: one channel
        data = data.unsqueeze(1)
    elif data.shape[-1] in (1, 3):  # N, H, W, C (CIFAR); SVHN's is already N, C, H, W
        data = data.permute(0, 3, 1, 2)
    targets = getattr(ds, "labels", None)  # SVHN's name for them
    labels = torch.as_tensor(np.asarray(ds.targets if targets is None else targets), dtype=torch.long)  # type: ignore[attr-defined]
    return ImageSet(data.contiguous(), labels)


def _fetch_hint(name: str) -> str:
    return (f"Get it with `bench data fetch {name} --data-dir DIR` (torchvision download; needs "
            f"network) and pass --data-dir DIR, or set BENCH_DATA_DIR.")


_LINF_8 = ThreatModel(Norm.LINF, 8 / 255)
_L2_05 = ThreatModel(Norm.L2, 0.5)
_CIFAR_MEAN, _CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)

DEFAULT_DATASET = "fashion-mnist"  # the embedded one (Debian's package): what every command uses unless told

DATASETS.add("fashion-mnist", DatasetSpec(
    "fashion-mnist", 10, (1, 28, 28), (0.2860,), (0.3530,), (ThreatModel(Norm.LINF, 0.1),),
    "On Debian/Ubuntu: `apt-get install dataset-fashion-mnist` (or `make data`); elsewhere: "
    + _fetch_hint("fashion-mnist"),
    loader=idx_files("Fashion-MNIST", (DEBIAN_FASHION_MNIST,), ("FashionMNIST/raw", "fashion-mnist")),
    download=Torchvision("FashionMNIST")))
DATASETS.add("mnist", DatasetSpec(
    "mnist", 10, (1, 28, 28), (0.1307,), (0.3081,), (ThreatModel(Norm.LINF, 0.3),), _fetch_hint("mnist"),
    download=Torchvision("MNIST")))
DATASETS.add("cifar10", DatasetSpec(
    "cifar10", 10, (3, 32, 32), _CIFAR_MEAN, _CIFAR_STD, (_LINF_8, _L2_05), _fetch_hint("cifar10"),
    download=Torchvision("CIFAR10")))
DATASETS.add("cifar100", DatasetSpec(
    "cifar100", 100, (3, 32, 32), (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), (_LINF_8, _L2_05),
    _fetch_hint("cifar100"), download=Torchvision("CIFAR100")))
DATASETS.add("svhn", DatasetSpec(
    "svhn", 10, (3, 32, 32), (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), (_LINF_8, _L2_05),
    _fetch_hint("svhn"), download=Torchvision("SVHN", split_by_name=True), test_points=26_032))


def load(dataset: str, split: Split, data_dir: Path | None = None) -> ImageSet:
    """The split, admitted only if it is what the dataset is: images of its shape, one label per
    image, every label one of its classes, and no more test points than it has (records index them)."""
    spec = DATASETS.get(dataset)
    try:
        found = spec.read(data_dir, split)
    except MissingData as exc:
        raise BenchError(f"{exc} {spec.how_to_get}") from None
    where = f"{dataset} {split.value} data{f' in {data_dir}' if data_dir else ''}"
    if found.images.ndim != 4 or tuple(found.images.shape[1:]) != spec.shape:
        raise BenchError(f"{where}: images of shape {tuple(found.images.shape[1:])}, not {spec.shape}")
    if len(found.images) != len(found.labels):
        raise BenchError(f"{where}: {len(found.images)} images but {len(found.labels)} labels (mismatched files)")
    if len(found.labels) and not 0 <= int(found.labels.min()) <= int(found.labels.max()) < spec.num_classes:
        raise BenchError(f"{where}: labels outside the {spec.num_classes} classes (a file of another dataset?)")
    if split is Split.TEST and len(found) > spec.test_points:
        raise BenchError(f"{where}: {len(found)} test points, {dataset} has {spec.test_points}")
    return found


def fetch(dataset: str, data_dir: Path) -> None:
    """Download a dataset with torchvision into data_dir (the only place that uses the network)."""
    spec = DATASETS.get(dataset)
    if spec.download is None:
        raise BenchError(f"{dataset} cannot be downloaded by bench: {spec.how_to_get}")
    ensure_writable_dir(data_dir, "--data-dir")
    try:
        for split in Split:
            spec.download.dataset(data_dir, split, download=True)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; torchvision raises RuntimeError
        raise BenchError(f"could not download {dataset} into {data_dir} ({first_line(exc)}): this needs network access; "
                         "on a machine without it, copy the files into --data-dir") from None


def select_indices(total: int, n: int | None, sample_seed: int | None) -> np.ndarray:
    """The evaluation subset: the first n points, or n points drawn with sample_seed (sorted)."""
    n = total if n is None else n
    if n <= 0 or n > total:
        raise BenchError(f"--n must be between 1 and {total} (the test set size), got {n}")
    if sample_seed is None:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(sample_seed)
    return np.sort(rng.choice(total, size=n, replace=False)).astype(np.int64)


def hash_indices(indices: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(indices, dtype="<i8").tobytes()).hexdigest()


def holdout_split(total: int, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split training indices into (train, held-out validation); the held-out part is what
    checkpoints are selected on, never the test set."""
    order = np.random.default_rng(seed).permutation(total)
    n_val = int(round(total * fraction))
    return np.sort(order[n_val:]), np.sort(order[:n_val])
