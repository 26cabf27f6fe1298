import pytest

from bench.attacks import ATTACKS
from bench.data import DATASETS
from bench.errors import BenchError
from bench.registry import Registry
from defenses import DEFENSES


def test_unknown_name_suggests_close_matches():
    with pytest.raises(BenchError, match="Did you mean: pgd-at"):
        DEFENSES.get("pgd_at")
    with pytest.raises(BenchError, match="Did you mean: pgd"):
        ATTACKS.get("pgdd")
    with pytest.raises(BenchError, match="Available: cifar10"):
        DATASETS.get("imagenet-xyz")


def test_duplicate_registration_is_refused():
    reg: Registry[int] = Registry("thing")
    reg.add("a", 1)
    with pytest.raises(ValueError):
        reg.add("a", 2)


def test_all_issue_attacks_are_registered():
    expected = {"fgsm", "pgd", "cw", "cw-l2", "aa", "aa-plus", "aa-rand", "apgd-ce", "apgd-dlr",
                "apgd-t", "fab-t", "square"}
    assert expected <= set(ATTACKS.names())
