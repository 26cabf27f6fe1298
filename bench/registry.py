"""A small typed registry: names map to entries; unknown names fail with close matches."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from bench.errors import BenchError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """Name → entry map for one kind of thing (attacks, defenses, datasets, architectures)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of `add`."""

        def wrap(entry: T) -> T:
            return self.add(name, entry)

        return wrap

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise BenchError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        hint = did_you_mean(name.lower(), self.names(), cutoff=0.5)
        return f"unknown {self.kind} {name!r}.{hint} Available: {', '.join(self.names())}"

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(sorted(self._entries.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._entries


def import_modules(package: str, path: Iterable[str], skip: Iterable[str] = ()) -> None:
    """Import every module (not sub-package) of a package, so that each one registers what it defines:
    adding an attack or a defense is adding its module, with no list of names to keep in step."""
    skipped = set(skip)
    for info in sorted(pkgutil.iter_modules(list(path)), key=lambda m: m.name):
        if not info.ispkg and info.name not in skipped and not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
