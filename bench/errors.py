"""User-facing errors: the CLI prints their message and exits non-zero, without a traceback."""


class BenchError(Exception):
    """A problem the user can fix (bad name, bad file, missing data); the message says how."""


class VerificationError(BenchError):
    """An attack counted a success that is not one (outside the ε-ball, outside [0,1], or still
    correctly classified). Always a bug in an attack: never a number to report."""


class ModelGuardError(BenchError):
    """The model under test breaks a contract the attacks rely on (logits out, determinism...)."""


class ModelInputError(ModelGuardError):
    """The model cannot even run on the dataset's inputs (wrong shape, static-batch export)."""
