"""RobustBench imports despite its packaging, and zoo models load offline from its directory layout."""

import pytest
import torch

from bench.errors import BenchError
from bench.loading import zoo
from tests.conftest import write_zoo_model


def test_robustbench_imports_with_pyautoattack_under_its_original_name():
    rb = zoo.import_robustbench()
    import autoattack
    import pyautoattack

    assert autoattack is pyautoattack and callable(rb.load_model)


def test_zoo_model_loads_offline_from_a_file_in_robustbench_layout(tmp_path):
    written, _ = write_zoo_model(tmp_path)
    model = zoo.load_zoo_model("Wong2020Fast", "cifar10", "linf", tmp_path).module
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), written.eval()(x))


def test_missing_zoo_weights_say_how_to_get_them_and_unknown_names_suggest(tmp_path):
    with pytest.raises(BenchError, match="does not download"):
        zoo.load_zoo_model("Wong2020Fast", "cifar10", "linf", tmp_path)
    with pytest.raises(BenchError, match="Did you mean: Wong2020Fast"):
        zoo.load_zoo_model("Wong2020Fst", "cifar10", "linf", tmp_path)
