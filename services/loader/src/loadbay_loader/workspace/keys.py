"""Telling from a client's routed rows, as they stream into COPY, that every row has a key and
no key comes twice, where bytes can tell: ``text`` keys (equal values are equal bytes) and
``integer``/``bigint`` keys written canonically (``0``, ``42``, ``-7``: no sign, zero or space
before the digits). Anything else, or more than ``limit`` keys for one client, stays
undecided and direct.py asks PostgreSQL instead (one hashed pass over the table).

The check runs in the loader while PostgreSQL parses the rows sent before, so it costs no
time of its own; a missing or repeated key stops the COPY (routing.NotDirect).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loadbay_loader.workspace.routing import NotDirect

BYTEWISE = frozenset({"text", "integer", "bigint"})
INTEGERS = frozenset({"integer", "bigint"})


def _canonical(value: bytes) -> bool:
    """An integer spelled the one way PostgreSQL would print it."""
    if value.isdigit():
        return value[0] != 0x30 or len(value) == 1
    return value[:1] == b"-" and value[1:].isdigit() and value[1] != 0x30


class KeyWatch:
    """Watches one client's rows (the dataset part, CSV without quotes, whole lines in order
    but cut anywhere into chunks)."""

    def __init__(self, positions: Sequence[int], types: Sequence[str], limit: int = 1_000_000):
        self.decided = all(t in BYTEWISE for t in types)  # False: PostgreSQL must tell
        self._positions = tuple(positions)
        self._single = len(self._positions) == 1
        self._integers = tuple(i for i, t in enumerate(types) if t in INTEGERS)
        self._limit = limit
        self._seen: set[Any] = set()
        self._rest = b""

    def see(self, chunk: bytes) -> None:
        if not self.decided:
            return
        buffer = self._rest + chunk if self._rest else chunk
        end = buffer.rfind(b"\n") + 1
        self._rest = buffer[end:]
        lines = buffer[:end].split(b"\n")
        lines.pop()
        keys = self._keys(lines)
        if not all(keys) if self._single else not all(map(all, keys)):
            raise NotDirect("an empty key")
        if self._integers and not self._all_canonical(keys):
            self._undecided()
            return
        before = len(self._seen)
        self._seen.update(keys)
        if len(self._seen) != before + len(keys):
            raise NotDirect("a repeated key")
        if len(self._seen) > self._limit:
            self._undecided()

    def _keys(self, lines: list[bytes]) -> list[Any]:
        """Each line's key: bytes for a one-column key, else a tuple of bytes."""
        positions = self._positions
        cut = max(positions) + 1
        if self._single:
            at = positions[0]
            return [line.split(b",", cut)[at] for line in lines]
        return [tuple(line.split(b",", cut)[i] for i in positions) for line in lines]

    def _all_canonical(self, keys: list[Any]) -> bool:
        if self._single:
            return all(map(_canonical, keys))
        return all(_canonical(key[i]) for key in keys for i in self._integers)

    def _undecided(self) -> None:
        self.decided = False
        self._seen.clear()
