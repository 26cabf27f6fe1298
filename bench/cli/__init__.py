"""`bench` command line: one module per command group; strings are parsed here and nowhere else."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
from typing import NoReturn

from bench.cli import audit, campaign, catalog, check, external, results, run, sweep, train
from bench.errors import BenchError, did_you_mean, first_line
from bench.progress import start_clock


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2) that points to --help."""

    def error(self, message: str) -> NoReturn:
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:  # argparse < 3.12 does not suggest
            hint = did_you_mean(choice.group(1).lower(), re.findall(r"'([^']*)'", choice.group(2)))
            message += f".{hint}" if hint else ""
        print(f"error: {self.prog}: {message} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="bench", description="Train robust classifiers and evaluate "
                           "them with FGSM, PGD, C&W and the official AutoAttack; derive result "
                           "tables, leaderboards and a CI regression gate from the run records.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"bench {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    run.add(sub)
    run.add_certify(sub)
    external.add(sub)
    train.add(sub)
    results.add_results(sub)
    results.add_leaderboard(sub)
    sweep.add(sub)
    check.add(sub)
    audit.add_audit(sub)
    audit.add_inspect(sub)
    catalog.add_ls(sub)
    catalog.add_data(sub)
    campaign.add(sub)
    return parser


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("robust-bench-suite")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _tolerant_streams() -> None:
    """A terminal or pipe that cannot encode ε, ∞ or ✗ (LANG=C, PYTHONIOENCODING=ascii) gets
    escapes instead of a UnicodeEncodeError halfway through a table."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):  # replaced by a test, or closed
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]


def main(argv: list[str] | None = None) -> int:
    _tolerant_streams()
    args = build_parser().parse_args(argv)
    start_clock()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a full disk under `> file` is reported here, not at interpreter exit
        return code
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command with --resume to continue", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `bench results | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # the system said no: a name too long, a full disk, a read-only folder
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or first_line(exc)}{where} (nothing was left half-written)", file=sys.stderr)
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 2


if __name__ == "__main__":
    sys.exit(main())
