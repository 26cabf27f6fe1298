"""Argument types shared by the subcommands: a bad value is argparse's one-line usage error."""

from __future__ import annotations

import argparse
import math

SEED_LIMIT = 2**32  # seeds are 0 … 2^32 − 1 for every attack (numpy's and torch's common range)


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def positive_int(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def non_negative_int(text: str) -> int:
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be at least 0")
    return value


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


def add_randomized_arguments(p: argparse.ArgumentParser, allow_help: str) -> None:
    """--allow-randomized and --draws, the same on every command that evaluates a model."""
    p.add_argument("--allow-randomized", action="store_true", help=f"a randomized model (two identical forwards "
                   f"differ): {allow_help}")
    from bench.config import RANDOMIZED_DRAWS

    p.add_argument("--draws", type=positive_int, default=RANDOMIZED_DRAWS, help="a randomized model's predictions "
                   "(clean accuracy, verification of every success) are the majority vote of this many forwards "
                   f"(default {RANDOMIZED_DRAWS})")
