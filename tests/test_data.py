import gzip

import numpy as np
import pytest

from bench import data
from bench.errors import BenchError


def test_fashion_mnist_is_read_from_the_debian_files(fmnist_test):
    assert len(fmnist_test) == 10_000
    x, y = fmnist_test.batch(slice(0, 8))
    assert x.shape == (8, 1, 28, 28) and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert y.tolist() == [9, 2, 1, 1, 6, 1, 4, 6]  # the published first Fashion-MNIST test labels
    assert len(data.load("fashion-mnist", data.Split.TRAIN)) == 60_000


def test_missing_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(BenchError, match="apt-get install dataset-fashion-mnist"):
        data.load("fashion-mnist", data.Split.TEST, tmp_path)
    with pytest.raises(BenchError, match="bench data fetch cifar10"):
        data.load("cifar10", data.Split.TEST, tmp_path)


def test_corrupt_idx_file_is_a_clear_error(tmp_path):
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(tmp_path / f"{stem}.gz", "wb") as handle:
            handle.write(b"<html>not a dataset</html>")
    with pytest.raises(BenchError, match="not an IDX file"):
        data.load("fashion-mnist", data.Split.TEST, tmp_path)


def test_evaluation_subsets_are_deterministic_and_hashed():
    assert data.select_indices(100, 5, None).tolist() == [0, 1, 2, 3, 4]
    a, b = data.select_indices(10_000, 50, 7), data.select_indices(10_000, 50, 7)
    assert np.array_equal(a, b) and not np.array_equal(a, data.select_indices(10_000, 50, 8))
    assert data.hash_indices(a) == data.hash_indices(b) != data.hash_indices(a[:-1])
    with pytest.raises(BenchError, match="--n must be between"):
        data.select_indices(100, 101, None)


def test_holdout_split_is_disjoint_and_stable():
    train, val = data.holdout_split(1000, 0.1)
    assert len(val) == 100 and not set(train) & set(val)
    assert np.array_equal(val, data.holdout_split(1000, 0.1)[1])


def test_a_torchvision_dataset_is_read_through_its_registered_class(tmp_path, fmnist_test):
    """MNIST through torchvision.datasets.MNIST, from IDX files laid out as torchvision keeps them
    (Fashion-MNIST's bytes stand in: same format, no download)."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):  # torchvision wants all four before it reads one split
        (raw / name).write_bytes(gzip.decompress((data.DEBIAN_FASHION_MNIST / f"{name}.gz").read_bytes()))
    test = data.load("mnist", data.Split.TEST, tmp_path)
    assert test.images.shape == (10_000, 1, 28, 28) and test.labels.dtype.is_floating_point is False
    assert test.images.equal(fmnist_test.images) and test.labels.equal(fmnist_test.labels)
