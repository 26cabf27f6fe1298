"""Progress bars with ETA on long loops; silent when not on a terminal or when asked to be quiet."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], *, desc: str, disable: bool = False, total: int | None = None) -> Iterable[T]:
    return tqdm(items, desc=desc, total=total, leave=False, dynamic_ncols=True,
                disable=disable or not sys.stderr.isatty())
