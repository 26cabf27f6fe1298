"""A researcher's first hour, as the README's "Your own model" section writes it: each command run
as written, in a folder of their own with their own module, only made cheaper (fewer points and
epochs, a small MLP)."""

import re
import shlex

from bench.cli import main
from tests.conftest import REPO

MYNETS = '''
from torch import nn


def make_net():
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 64), nn.ReLU(), nn.Linear(64, 10))
'''
CHEAPER = {"train": ["--epochs", "1", "--max-train-points", "256", "--attack-steps", "2", "--quiet"],
           "run": ["--n", "20", "--quiet"], "audit": ["--n", "10", "--binarization-points", "10", "--quiet"],
           "leaderboard": [], "check": ["--quiet"]}


def _section_commands() -> list[list[str]]:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Your own model"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1).replace("\\\n", " ")
    return [shlex.split(line.split("#")[0])[1:] for line in block.splitlines() if line.startswith("bench ")]


def test_the_readmes_own_model_section_runs_as_written(tmp_path, monkeypatch, capsys):
    commands = _section_commands()
    assert [c[0] for c in commands] == ["train", "run", "audit", "leaderboard", "check", "check"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "mynets.py").write_text(MYNETS)
    codes = []
    for argv in commands:
        extra = CHEAPER[argv[0]] + (["--n", "20", "--attack", "fgsm,pgd"] if "--update-baseline" in argv else [])
        codes.append(main([*argv, *extra]))
    assert codes[:2] == [0, 0] and codes[2] in (0, 1) and codes[3:] == [0, 0, 0], codes  # audit: 1 = masking found
    out = capsys.readouterr().out
    assert "mine (Sequential, sha256" in out and "PASS: 1 checkpoints, 0 red" in out
    board = (tmp_path / "mine" / "LEADERBOARD.md").read_text()
    assert "| `mine` " in board.replace("  ", " ") and "(the suite's committed records, read in place)" in board
    assert (tmp_path / "mine" / "LEADERBOARD.html").is_file() and list((tmp_path / "mine" / "audits").glob("*.md"))
