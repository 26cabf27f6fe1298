"""Resume progress is typed: it round-trips through the saved state, reads states saved before
margins were kept, and a damaged entry is refused naming the file."""

import json

import pytest

from bench.errors import BenchError
from bench.records.resume import AttackProgress, ResumeState, StageCost


def test_progress_round_trips_through_a_saved_state(tmp_path):
    state = ResumeState(tmp_path, "m", {"k": 1})
    prog = AttackProgress.fresh([True, False, True])
    prog.alive[0], prog.broken_by[0], prog.margin[0], prog.stage, prog.batch = 0, "pgd", -0.5, 1, 2
    prog.stage_cost["pgd"] = StageCost(1.5, 10, 10, 2, 1)
    state.progress["pgd"] = prog
    state.start(resume=False)
    state.save()
    state.release()  # as an interrupted run leaves it
    again = ResumeState(tmp_path, "m", {"k": 1})
    again.progress["pgd"] = AttackProgress.fresh([True, False, True])  # what the resumed run starts from
    again.start(resume=True)
    assert again.progress == {"pgd": prog} and again.resumed
    again.release()


def test_a_state_saved_before_margins_were_kept_still_resumes():
    old = {"alive": [1, 0], "broken_by": [None, "fgsm"], "stage": 0, "batch": 1, "stage_alive": [1, 1],
           "forward": 4, "backward": 2, "seconds": 0.1, "warnings": []}
    prog = AttackProgress.from_json(old, AttackProgress.fresh([True, True]), "fgsm")
    assert prog.margin == [None, None] and prog.stage_cost == {} and prog.batch == 1


FRESH = [True, False, True]  # the run's clean predictions
SAVED = {"alive": [0, 0, 1], "broken_by": ["pgd", None, None], "margin": [-0.5, None, 0.25], "stage": 1,
         "batch": 0, "stage_alive": None, "forward": 4, "backward": 4, "seconds": 0.5, "warnings": [],
         "stage_cost": {"pgd": {"seconds": 0.5, "forward": 4, "backward": 4, "attacked": 2, "broken": 1}}}


def _resume(tmp_path, progress):
    state = ResumeState(tmp_path, "m", {"k": 1})
    state.path.write_text(json.dumps({"key": {"k": 1}, "progress": progress}))
    state.progress["pgd"] = AttackProgress.fresh(FRESH)
    try:
        state.start(resume=True)
        return state.progress
    finally:
        state.release()


def test_an_untouched_state_resumes(tmp_path):
    assert _resume(tmp_path, {"pgd": SAVED})["pgd"].alive == [0, 0, 1]


@pytest.mark.parametrize("edit", [
    # damaged
    lambda e: [1, 2], lambda e: {"alive": "11"}, lambda e: {**e, "nonsense": 1}, lambda e: {"alive": [1, 0, 1]},
    # edited so that the run's numbers would come out wrong
    lambda e: {**e, "alive": [0, 1, 1]},  # a misclassified point counted robust
    lambda e: {**e, "alive": [1, 0, 1]},  # a point alive and broken at once
    lambda e: {**e, "broken_by": [None, "pgd", None], "alive": [0, 0, 1]},  # a misclassified point "broken"
    lambda e: {**e, "broken_by": ["cw", None, None]},  # broken by another attack
    lambda e: {**e, "alive": [0, 0, 1, 1], "broken_by": ["pgd", None, None, None]},  # more points than the run
    lambda e: {**e, "alive": [0, 0, True]}, lambda e: {**e, "alive": [0, 0, 1.0]},
    lambda e: {**e, "stage_alive": [0, 0, 0]},  # the stage started without a point still alive
    lambda e: {**e, "margin": [float("nan"), None, 0.25]}, lambda e: {**e, "stage": -1},
    lambda e: {**e, "batch": 2**53}, lambda e: {**e, "seconds": -1}, lambda e: {**e, "warnings": [1]},
    lambda e: {**e, "stage_cost": {"pgd": {"seconds": -1}}}, lambda e: {**e, "stage_cost": {"pgd": {"x": 1}}},
], ids=["list", "alive-text", "extra-field", "no-broken-by", "misclassified-robust", "alive-and-broken",
        "misclassified-broken", "other-attack", "extra-points", "bool-bit", "float-bit", "stage-alive",
        "nan-margin", "negative-stage", "huge-batch", "negative-seconds", "warning-number", "cost-negative",
        "cost-field"])
def test_a_state_that_does_not_match_its_run_is_refused_naming_the_file(tmp_path, edit):
    with pytest.raises(BenchError, match=r"m-.*\.json (does not match this run|is not a saved run)"):
        _resume(tmp_path, {"pgd": edit(dict(SAVED))})


def test_a_state_for_other_attacks_is_refused(tmp_path):
    with pytest.raises(BenchError, match="names other attacks than this run"):
        _resume(tmp_path, {"pgd": SAVED, "cw": SAVED})
