"""Resume progress is typed: it round-trips through the saved state, reads states saved before
margins were kept, and a damaged entry is refused naming the file."""

import json

import pytest

from bench.errors import BenchError
from bench.records import AttackProgress, ResumeState, StageCost


def test_progress_round_trips_through_a_saved_state(tmp_path):
    state = ResumeState(tmp_path, "m", {"k": 1})
    prog = AttackProgress.fresh([True, False, True])
    prog.broken_by[0], prog.margin[0], prog.stage, prog.batch = "pgd", -0.5, 1, 2
    prog.stage_cost["pgd"] = StageCost(1.5, 10, 10, 2, 1)
    state.progress["pgd"] = prog
    state.start(resume=False)
    state.save()
    state.release()  # as an interrupted run leaves it
    again = ResumeState(tmp_path, "m", {"k": 1})
    again.start(resume=True)
    assert again.progress == {"pgd": prog} and again.resumed
    again.release()


def test_a_state_saved_before_margins_were_kept_still_resumes():
    old = {"alive": [1, 0], "broken_by": [None, "fgsm"], "stage": 0, "batch": 1, "stage_alive": [1, 1],
           "forward": 4, "backward": 2, "seconds": 0.1, "warnings": []}
    prog = AttackProgress.from_json(old)
    assert prog.margin == [None, None] and prog.stage_cost == {} and prog.batch == 1


@pytest.mark.parametrize("entry", [[1, 2], {"alive": "11"}, {"alive": [1], "broken_by": [None], "nonsense": 1}])
def test_a_damaged_progress_entry_is_refused_naming_the_file(tmp_path, entry):
    state = ResumeState(tmp_path, "m", {"k": 1})
    state.path.write_text(json.dumps({"key": {"k": 1}, "progress": {"pgd": entry}}))
    with pytest.raises(BenchError, match="is not a saved run"):
        state.start(resume=True)
    state.release()
