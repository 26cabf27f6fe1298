"""Progress without a terminal (CI runners, nohup, batch systems): a line on stderr at most every
LINE_INTERVAL_S, with points done, rate and ETA; nothing for a short command, nothing when quiet."""

import pytest

from bench import progress
from bench.cli import main


def test_lines_carry_done_rate_and_eta():
    assert progress.progress_line("pgd", 12, 40, 24.0) == "pgd: 12/40 (0.5/s, 24s elapsed, ETA 56s)"
    assert progress.progress_line("square", 3, None, 90.0) == "square: 3/? (0.033/s, 1m30s elapsed)"
    assert progress.progress_line("aa", 40, 40, 7300.0).endswith("2h01m elapsed)")  # done: no ETA


@pytest.fixture
def ticking(monkeypatch):
    """A clock that advances 20 s per reading, and stderr that is not a terminal."""
    now = [0.0]

    def monotonic():
        now[0] += 20.0
        return now[0]

    monkeypatch.setattr(progress.time, "monotonic", monotonic)
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: False, raising=False)
    progress.start_clock()


def test_a_long_loop_prints_rate_limited_lines_and_a_quiet_one_none(ticking, capsys):
    assert list(progress.progress(range(6), desc="pgd batches")) == list(range(6))
    lines = capsys.readouterr().err.splitlines()
    assert 2 <= len(lines) <= 4 and all(line.startswith("pgd batches: ") and "/6 (" in line for line in lines)
    assert list(progress.progress(range(6), desc="pgd batches", disable=True)) == list(range(6))
    assert capsys.readouterr().err == ""


def test_a_short_command_prints_no_progress(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: False, raising=False)
    assert main(["run", "--defense", "standard", "--attack", "fgsm", "--n", "5", "--results-dir",
                 str(tmp_path)]) == 0
    assert capsys.readouterr().err == ""
