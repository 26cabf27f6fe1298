"""User-facing errors: the CLI prints their message and exits non-zero, without a traceback."""

import difflib
from collections.abc import Iterable


class BenchError(Exception):
    """A problem the user can fix (bad name, bad file, missing data); the message says how."""


class VerificationError(BenchError):
    """An attack counted a success that is not one (outside the ε-ball, outside [0,1], or still
    correctly classified). Always a bug in an attack: never a number to report."""


class ModelGuardError(BenchError):
    """The model under test breaks a contract the attacks rely on (logits out, determinism...)."""


class ModelInputError(ModelGuardError):
    """The model cannot even run on the dataset's inputs (wrong shape, static-batch export)."""


def first_line(exc: BaseException) -> str:
    """The line of an exception's message worth showing in a one-line error (never empty)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or "Unsupported" in line:  # the weights-only unpickler's reason
            return line
    return lines[0] if lines else type(exc).__name__


def did_you_mean(word: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.6) -> str:
    """The hint every "unknown name" message ends with: ` Did you mean: a, b?` for the choices close
    to a mistyped `word`, else the empty string."""
    close = difflib.get_close_matches(word, list(choices), n=n, cutoff=cutoff)
    return f" Did you mean: {', '.join(close)}?" if close else ""
