"""Argument types shared by the subcommands: a bad value is argparse's one-line usage error."""

from __future__ import annotations

import argparse
import math
import re

from bench.data import DATASETS, DEFAULT_DATASET
from bench.errors import BenchError
from bench.files import checked_label


def dataset_help() -> str:
    """The registered datasets, the default first: `--dataset`'s help, never a hand-kept list."""
    return ", ".join([f"{DEFAULT_DATASET} (default)", *(n for n in DATASETS.names() if n != DEFAULT_DATASET)])


SEED_LIMIT = 2**32  # seeds are 0 … 2^32 − 1 for every attack (numpy's and torch's common range)


COUNT_LIMIT = 2**31  # counts (points, batches, steps, draws): far beyond any real use, inside every C int


def _whole(text: str) -> int:
    if not re.fullmatch(r"\s*[-+]?[0-9]{1,40}\s*", text):
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number")
    return int(text)


def _count(text: str, low: int) -> int:
    value = _whole(text)
    if value < low:
        raise argparse.ArgumentTypeError(f"{value} must be at least {low}")
    if value >= COUNT_LIMIT:
        raise argparse.ArgumentTypeError(f"{value} is too large (at most {COUNT_LIMIT - 1})")
    return value


def positive_int(text: str) -> int:
    return _count(text, 1)


def non_negative_int(text: str) -> int:
    return _count(text, 0)


def seed_value(text: str) -> int:
    value = _whole(text)
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"{value} is outside the seed range 0 … {SEED_LIMIT - 1}")
    return value


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def non_negative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must not be negative")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    return value


def add_randomized_arguments(p: argparse.ArgumentParser, allow_help: str) -> None:
    """--allow-randomized and --draws, the same on every command that evaluates a model."""
    p.add_argument("--allow-randomized", action="store_true", help=f"a randomized model (two identical forwards "
                   f"differ): {allow_help}")
    from bench.evaluation.config import RANDOMIZED_DRAWS

    p.add_argument("--draws", type=positive_int, default=RANDOMIZED_DRAWS, help="a randomized model's predictions "
                   "(clean accuracy, verification of every success) are the majority vote of this many forwards "
                   f"(default {RANDOMIZED_DRAWS})")


def label_value(text: str) -> str:
    """A `--label`: a model's name in records, result files and baselines (bench.files.checked_label)."""
    try:
        return checked_label(text, "")
    except BenchError as exc:
        raise argparse.ArgumentTypeError(str(exc).strip()) from None
