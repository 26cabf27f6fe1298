"""Each leaderboard sanity check fires on the pattern it exists for and tolerates noise."""

from bench.auditing import checks as sanity
from tests.synthetic import attack, record, run, typed

INPUT_DIM = 28 * 28


def _pgd(flags, eps, steps=20, restarts=1, file=None, **kw):
    cfg = {"steps": steps, "restarts": restarts, "rel_step": 0.25, "random_start": True, "loss": "ce"}
    label = "pgd" if steps == 20 and restarts == 1 else f"pgd:steps={steps}"
    return run({label: attack(flags, "pgd", config=cfg)}, eps=eps, file=file or f"{eps}-{steps}.json", **kw)


def test_eps_curve_rising_is_marked():
    records = [_pgd("1" * 20 + "0" * 80, 0.1), _pgd("1" * 40 + "0" * 60, 0.2)]
    result = sanity.eps_curve(records, "linf", INPUT_DIM)
    assert result is not None and not result.passed and "rises from ε=0.1 to ε=0.2" in result.detail


def test_eps_curve_noise_is_tolerated_and_collapse_untested_is_said():
    low = "1" * 30 + "0" * 70
    higher = "0" + "1" * 31 + "0" * 68  # 2 gained, 1 lost: noise
    result = sanity.eps_curve([_pgd(low, 0.1), _pgd(higher, 0.2)], "linf", INPUT_DIM)
    assert result.passed and "not tested" in result.detail


def test_eps_curve_must_reach_the_class_share_at_collapse():
    stuck = [_pgd("1" * 60 + "0" * 40, 0.1), _pgd("1" * 60 + "0" * 40, 0.5)]
    result = sanity.eps_curve(stuck, "linf", INPUT_DIM)
    assert not result.passed and "no classifier exceeds 10.0%" in result.detail
    falls = [_pgd("1" * 60 + "0" * 40, 0.1), _pgd("0" * 100, 0.5)]
    assert sanity.eps_curve(falls, "linf", INPUT_DIM).passed


def test_more_steps_raising_accuracy_is_marked():
    records = [_pgd("1" * 20 + "0" * 80, 0.1, steps=1), _pgd("1" * 45 + "0" * 55, 0.1, steps=20)]
    result = sanity.attack_strength(records, "linf", 0.1)
    assert not result.passed and "rises from 1 to 20" in result.detail
    healthy = [_pgd("1" * 45 + "0" * 55, 0.1, steps=1), _pgd("1" * 20 + "0" * 80, 0.1, steps=20)]
    assert sanity.attack_strength(healthy, "linf", 0.1).passed
    assert sanity.attack_strength(healthy[:1], "linf", 0.1) is None  # one strength: nothing to compare


def _aa(square_breaks: int, n: int = 100):
    robust = 60
    flags = "1" * (robust - square_breaks) + "0" * (n - robust + square_breaks)
    first = [None] * (robust - square_breaks) + ["aa/square"] * square_breaks + ["aa/apgd-ce"] * (n - robust)
    return run({"aa": attack(flags, "aa", stages=["apgd-ce", "apgd-t", "fab-t", "square"])},
                  broken_first_by=first)


def test_square_beating_white_box_is_marked_unless_white_box_broke_those_points():
    result = sanity.black_box({"aa": _aa(8)})
    assert not result.passed and "Square broke 8 of 60" in result.detail
    assert sanity.black_box({"aa": _aa(0)}).passed
    # PGD broke the same 8 points: Square found nothing white-box attacks missed
    pgd = _pgd("1" * 52 + "0" * 48, 0.1)
    assert sanity.black_box({"aa": _aa(8), "pgd": pgd}).passed
    assert sanity.black_box({"pgd": pgd}) is None  # no Square ran


def test_aa_fast_square_runs_count_as_black_box():
    flags = "1" * 52 + "0" * 48
    first = [None] * 52 + ["aa-fast/square/restart3"] * 8 + ["aa-fast/apgd-ce"] * 40
    fast = run({"aa-fast": attack(flags, "aa-fast", stages=["apgd", "square"])}, broken_first_by=first)
    result = sanity.black_box({"aa-fast": fast})
    assert not result.passed and "Square broke 8 of 60" in result.detail


def test_autoattack_warnings_become_a_mark():
    warned = run({"aa": attack("1" * 10, "aa", warnings=["autoattack apgd-ce: the model is randomized"])})
    result = sanity.autoattack_warnings({"aa": warned})
    assert not result.passed and "randomized" in result.detail


def _pair(other: str, other_flags: str, white_flags: str, white: str = "pgd"):
    both = run({other: attack(other_flags, other), white: attack(white_flags, white)})
    return {other: both, white: both}


def test_fgsm_beating_the_iterative_attacks_per_example_is_marked():
    pgd = "1" * 60 + "0" * 40
    fgsm_beyond = "0" * 8 + "1" * 52 + "0" * 40  # FGSM breaks 8 points PGD left robust
    result = sanity.single_step(_pair("fgsm", fgsm_beyond, pgd))
    assert not result.passed and result.detail == "FGSM broke 8 of 60 points the iterative attacks left robust"
    weaker = "1" * 70 + "0" * 30  # FGSM breaks a subset of what PGD breaks: healthy
    assert sanity.single_step(_pair("fgsm", weaker, pgd)).passed
    one = "0" + "1" * 59 + "0" * 40  # 1 of 60: noise
    assert sanity.single_step(_pair("fgsm", one, pgd)).passed
    assert sanity.single_step({"pgd": run({"pgd": attack(pgd, "pgd")})}) is None  # no FGSM ran


def test_random_noise_beating_the_white_box_attacks_is_marked():
    white = "1" * 50 + "0" * 50
    result = sanity.noise_baseline(_pair("noise", "0" * 10 + "1" * 40 + "0" * 50, white, "fgsm"))
    assert not result.passed and "random noise broke 10 of 50" in result.detail
    assert sanity.noise_baseline(_pair("noise", "1" * 100, white)).passed
    # Square is no white-box attack: beside it alone there is nothing to compare noise with
    assert sanity.noise_baseline(_pair("noise", "0" * 10 + "1" * 90, "1" * 100, "square")) is None


def test_attacks_must_reach_every_point_where_every_image_is_reachable():
    stuck = _pgd("1" * 5 + "0" * 95, 1.0, purpose="eps-sweep")
    result = sanity.unbounded([stuck], "linf", INPUT_DIM)
    assert not result.passed and "left 5 of 100 points robust at ε=1" in result.detail
    assert sanity.unbounded([stuck, _pgd("0" * 100, 1.0, file="b.json")], "linf", INPUT_DIM).passed  # strongest
    assert sanity.unbounded([_pgd("0" * 100, 0.5)], "linf", INPUT_DIM) is None  # ε = 0.5 is not unbounded
    assert sanity.unbounded([_pgd("0" * 100, 28.0, norm="l2")], "l2", INPUT_DIM).passed


def test_an_attack_set_swept_at_fewer_eps_gets_its_own_worst_case_curve():
    """fgsm+pgd swept at 3 ε, then a set with an adaptive attack at 2 ε on the same points: the
    worst case of the 3-ε set stays the checked one, and the other set's is a curve of its own."""
    from bench.records.curves import eps_curves

    two = [record({"fgsm": attack(f, "fgsm"), "pgd": attack(p, "pgd")}, eps=e, purpose="eps-sweep", file=f"a{e}.json",
                  date=f"2026-01-01T00:00:0{i}Z")
           for i, (e, f, p) in enumerate([(0.1, "1111", "1110"), (0.2, "1100", "1100"), (0.3, "1000", "0000")])]
    three = [record({"fgsm": attack(f, "fgsm"), "pgd": attack(p, "pgd"), "ra-sum": attack(a, "ra-sum")}, eps=e,
                    purpose="eps-sweep", file=f"b{e}.json", date=f"2026-01-02T00:00:0{i}Z")
             for i, (e, f, p, a) in enumerate([(0.1, "1111", "1110", "0110"), (0.2, "1100", "1100", "0100")])]
    curves = {c.attack: [round(p.accuracy, 2) for p in c.points] for c in eps_curves(typed(*two, *three), "linf")}
    assert curves["worst_case"] == [0.75, 0.5, 0.0]  # fgsm+pgd at 0.1, 0.2, 0.3
    assert curves["worst case: fgsm+pgd+ra-sum"] == [0.5, 0.25]
    assert curves["pgd"] == [0.75, 0.5, 0.0]  # the newest record at each ε, the same points
    assert eps_curves(typed(*two), "linf")[-1].attack == "worst_case"  # one set: no second curve
    pgd_and_ra = [record({"pgd": attack(p, "pgd"), "ra-sum": attack(a, "ra-sum")}, eps=e, purpose="eps-sweep",
                         file=f"c{e}.json", date=f"2026-01-03T00:00:0{i}Z")
                  for i, (e, p, a) in enumerate([(0.1, "1110", "0110"), (0.2, "1100", "0100")])]
    named = [c.attack for c in eps_curves(typed(*two, *pgd_and_ra), "linf")]
    assert "worst case: pgd+ra-sum" in named  # as many attacks as the checked set, but others


def test_a_registered_defense_without_its_adaptive_attacks_is_marked_on_the_board():
    """Full ancra ranked first at 79.7 unflagged before ra-aux, ra-bpda, ra-sum, transfer and long Square
    had run on it; a checkpoint of no registered defense has nothing to say which attacks it calls for."""
    from bench.reporting import columns
    from bench.reporting.rows import prepare

    flags = "1" * 90 + "0" * 10
    standard = {name: attack(flags, name) for name in ("fgsm", "pgd", "cw", "aa-fast")}
    masked = run(standard, label="ancra")
    result = sanity.adaptive_ran({label: masked for label in standard}, "fashion-mnist", "ancra")
    assert not result.passed and "ra-sum, ra-aux, ra-bpda, transfer, square-long" in result.detail
    complete = run({**standard, **{n: attack(flags, n) for n in ("ra-sum", "ra-aux", "ra-bpda", "transfer",
                                                                 "square-long")}}, label="ancra")
    assert sanity.adaptive_ran({label: complete for label in complete.attacks}, "fashion-mnist", "ancra").passed
    assert sanity.adaptive_ran({label: masked for label in standard}, "fashion-mnist", None) is None

    row = next(iter(prepare(typed(record(standard, label="ancra")), []).current.values()))[0]
    assert "⚠" in columns.worst_text(row) and "⚠ adaptive attacks run" in columns.checks_text(row)
    own = next(iter(prepare(typed(record(standard, label="my-model")), []).current.values()))[0]
    assert "⚠" not in columns.worst_text(own)
