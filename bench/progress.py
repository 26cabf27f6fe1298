"""Progress on long loops, with ETA: a bar on a terminal; elsewhere (CI runners, nohup, batch
systems) a line on stderr at most every LINE_INTERVAL_S across the process — during a loop, and when
one ends — so a short run prints none; nothing when asked to be quiet."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
LINE_INTERVAL_S = 30.0


def progress(items: Iterable[T], *, desc: str, disable: bool = False, total: int | None = None) -> Iterable[T]:
    if disable:
        return items
    if sys.stderr.isatty():
        return tqdm(items, desc=desc, total=total, leave=False, dynamic_ncols=True)
    return _lines(items, desc, total if total is not None else _length(items))


def _length(items: Iterable[T]) -> int | None:
    try:
        return len(items)  # type: ignore[arg-type]
    except TypeError:
        return None


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else (
        f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s")


def progress_line(desc: str, done: int, total: int | None, elapsed: float) -> str:
    """`pgd: 12/40 (0.52/s, 23s elapsed, ETA 54s)`; the ETA only when the total is known."""
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = f", ETA {_duration((total - done) / rate)}" if total is not None and rate > 0 and done < total else ""
    return f"{desc}: {done}/{total if total is not None else '?'} ({rate:.2g}/s, {_duration(elapsed)} elapsed{eta})"


class _Clock:
    """When the process last wrote a progress line (or began to track progress)."""

    last: float | None = None

    @classmethod
    def due(cls, now: float) -> bool:
        if cls.last is None:
            cls.last = now
        if now - cls.last < LINE_INTERVAL_S:
            return False
        cls.last = now
        return True


def start_clock() -> None:
    """A command begins: its first line comes LINE_INTERVAL_S from now (`bench.cli.main` calls this)."""
    _Clock.last = time.monotonic()


def _lines(items: Iterable[T], desc: str, total: int | None) -> Iterator[T]:
    start = time.monotonic()
    if _Clock.last is None:
        _Clock.last = start
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if _Clock.due(now):
            print(progress_line(desc, done, total, now - start), file=sys.stderr, flush=True)
    now = time.monotonic()
    if _Clock.due(now):
        print(progress_line(desc, done, total, now - start), file=sys.stderr, flush=True)
