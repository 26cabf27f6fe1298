import math

import pytest

from bench.data import DATASETS
from bench.errors import BenchError
from bench.threat import Norm, ThreatModel, format_eps, parse_eps


@pytest.mark.parametrize("text, value", [("0.1", 0.1), ("8/255", 8 / 255), ("8 / 255", 8 / 255), ("1", 1.0)])
def test_parse_eps_accepts_decimals_and_fractions(text, value):
    assert math.isclose(parse_eps(text), value)


@pytest.mark.parametrize("text", ["-0.1", "0", "abc", "1/0", "nan", "inf", ""])
def test_parse_eps_rejects_invalid_values_with_a_clear_message(text):
    with pytest.raises(BenchError, match="invalid ε"):
        parse_eps(text)


def test_eps_upper_bound_depends_on_the_norm():
    with pytest.raises(BenchError, match="L∞ budget must be in"):
        ThreatModel(Norm.LINF, 1.5)
    ThreatModel(Norm.L2, 2.0).check_fits(784)  # MNIST-style L2 budgets above 1 are legitimate
    with pytest.raises(BenchError, match="diameter"):
        ThreatModel(Norm.L2, 29.0).check_fits(784)


def test_norm_aliases_and_unknown_norm():
    assert Norm.parse("Linf") is Norm.LINF and Norm.parse("L2") is Norm.L2
    with pytest.raises(BenchError, match="unknown norm"):
        Norm.parse("l1")


def test_default_threat_models_per_dataset():
    assert DATASETS.get("fashion-mnist").default_threat() == ThreatModel(Norm.LINF, 0.1)
    assert DATASETS.get("mnist").default_threat() == ThreatModel(Norm.LINF, 0.3)
    for name in ("cifar10", "cifar100", "svhn"):
        spec = DATASETS.get(name)
        assert spec.default_threat() == ThreatModel(Norm.LINF, 8 / 255)
        assert spec.default_threat(Norm.L2) == ThreatModel(Norm.L2, 0.5)


def test_format_eps_prefers_k_over_255():
    assert format_eps(8 / 255) == "8/255" and format_eps(0.1) == "0.1" and format_eps(0.2) == "0.2"
