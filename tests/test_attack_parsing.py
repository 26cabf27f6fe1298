import pytest

from bench.attacks import AttackSpec, build_attack, build_attacks, format_attacks, parse_attacks
from bench.attacks.losses import Loss
from bench.errors import BenchError
from bench.threat import Norm


def test_parameter_strings_parse_into_typed_configs():
    specs = parse_attacks("fgsm, PGD:steps=50,restarts=2,aa,transfer:trades")
    assert specs == (AttackSpec("fgsm"), AttackSpec("pgd", (("steps", "50"), ("restarts", "2"))), AttackSpec("aa"),
                     AttackSpec("transfer", (("", "trades"),)))
    assert format_attacks(specs) == "fgsm,pgd:steps=50,restarts=2,aa,transfer:trades"  # the record's text
    assert parse_attacks(format_attacks(specs)) == specs
    attack = build_attack("pgd", {"steps": "50", "restarts": "2", "loss": "margin", "random_start": "false"})
    assert (attack.config.steps, attack.config.restarts, attack.config.loss, attack.config.random_start) == (
        50, 2, Loss.MARGIN, False)
    assert attack.label == "pgd:loss=margin,random_start=false,restarts=2,steps=50"


def test_defaults_follow_the_documented_protocols():
    pgd, cw = build_attack("pgd"), build_attack("cw")
    assert (pgd.config.steps, pgd.config.rel_step, pgd.config.random_start, pgd.config.loss) == (20, 0.25, True, Loss.CE)
    assert (cw.config.steps, cw.config.loss) == (30, Loss.MARGIN)
    stages = [s.component for s in build_attack("aa").stages()]
    assert stages == ["apgd-ce", "apgd-t", "fab-t", "square"]


@pytest.mark.parametrize("text, message", [
    ("pgd:stepz=5", "no parameter 'stepz'. Did you mean: steps"),
    ("pgd:steps=many", "not a valid int"),
    ("pgd:steps=0", "at least 1"),
    ("pgd:loss=hinge", "one of ce, margin"),
    ("aa:steps=10", "aa has no parameter 'steps'"),  # never a look-alike under an official name
    ("pgd,pgd", "same attack twice"),
    ("steps=3", "starts with a parameter"),
    ("", "no attack given"),
    ("pgdd", "Did you mean: pgd"),
])
def test_bad_attack_strings_are_clear_errors(text, message):
    with pytest.raises(BenchError, match=message):
        build_attacks(parse_attacks(text), Norm.LINF)


def test_l2_only_attack_is_refused_under_linf():
    with pytest.raises(BenchError, match="does not support the linf"):
        build_attacks(parse_attacks("cw-l2"), Norm.LINF)
    assert build_attacks(parse_attacks("cw-l2"), Norm.L2)[0].name == "cw-l2"
