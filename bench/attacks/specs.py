"""Attack specs: the `name:key=value,...` text of `--attack`, parsed once at the edge into typed
values that the library composes (the audit, the sweep, the gate) without joining strings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bench.errors import BenchError

POSITIONAL = ""  # params key of a bare `name:value`


@dataclass(frozen=True)
class AttackSpec:
    """One attack as asked for: its name (lower case) and its parameters as given, in order; the
    values stay text until the attack's config type converts them (`make_config`)."""

    name: str
    params: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, name: str, params: Mapping[str, str] | None = None) -> AttackSpec:
        return cls(name, tuple((params or {}).items()))

    @property
    def parameters(self) -> dict[str, str]:
        return dict(self.params)

    def __str__(self) -> str:
        if not self.params:
            return self.name
        return self.name + ":" + ",".join(v if k == POSITIONAL else f"{k}={v}" for k, v in self.params)


def format_attacks(specs: Iterable[AttackSpec]) -> str:
    """The `--attack` text of a list of specs (what a record's config keeps); parses back to them."""
    return ",".join(str(s) for s in specs)


def parse_attacks(text: str) -> tuple[AttackSpec, ...]:
    """'fgsm,pgd:steps=50,restarts=2,aa' → (fgsm, pgd with steps and restarts, aa).

    A comma-separated token `key=value` whose key has no ':' continues the previous attack's
    parameters (so a value may hold ':', as a URL does).
    """
    attacks: list[tuple[str, dict[str, str]]] = []

    def put(key: str, value: str) -> None:
        name, params = attacks[-1]
        if not key:
            raise BenchError(f"attack list {text!r}: {name} has a parameter without a name ({key}={value})")
        if key in params:
            raise BenchError(f"attack list {text!r}: {name} sets {key or 'its value'} twice")
        params[key] = value

    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        if "=" in token and ":" not in token.partition("=")[0]:
            if not attacks:
                raise BenchError(f"attack list {text!r} starts with a parameter: write name:key=value")
            key, _, value = token.partition("=")
            put(key.strip(), value.strip())
            continue
        name, _, first = token.partition(":")
        attacks.append((name.strip().lower(), {}))  # names are lower case: PGD means pgd
        if first:
            key, eq, value = first.partition("=")
            if eq:
                put(key.strip(), value.strip())
            else:
                attacks[-1][1][POSITIONAL] = first.strip()
    if not attacks:
        raise BenchError("no attack given: pass e.g. --attack fgsm,pgd,cw,aa")
    return tuple(AttackSpec.of(name, params) for name, params in attacks)
