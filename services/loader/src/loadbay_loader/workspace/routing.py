"""Routing a plain CSV file's rows to their client ids in the loader, for direct full loads.

A full load of a file with ``x__client_id`` can skip the staging table: the loader splits the
rows by client id and COPYs each client's rows straight into its workspace's table (direct.py).
That is only done for files whose rows the loader can split exactly as PostgreSQL would read
them, by bytes, without parsing CSV in Python:

- no quote character, carriage return, NUL byte or ``\\.`` line anywhere, valid UTF-8, no line
  longer than ``limits.max_record_bytes``;
- the header names the dataset's columns (in any order) together, and the others
  (``x__client_id``, ``x__deleted``, ``x__timestamp``, ignored extras) all before or all after
  them: a row's dataset part is then everything after its first or before its last few commas;
- ``x__deleted`` (if there) is empty or false in every row: a full load drops deleted rows,
  and the staging path does that.

Anything else raises :class:`NotDirect` and the load takes the staging path, which reads every
file. The dataset part of each row is not checked here: COPY types and checks it, and a
failure there sends the load to the staging path too (which names file, line and column).
Rows of client ids that no target has are never loaded; like the staging path, the loader
only checks that they have the right number of fields.

Memory is bounded: the routed rows wait in a :class:`Spool`, which keeps at most ``budget``
bytes in memory and appends the rest to one temporary file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field

from loadbay_loader.workspace.staging_store import CLIENT_ID, DELETED

#: How the staging path's boolean ``x__deleted`` spells "not deleted" (empty is NULL: live).
#: Only these are routed directly; any other value takes the staging path, which reads it.
_LIVE = frozenset({b"", b"false", b"False", b"FALSE", b"f", b"F", b"0"})
READ_CHUNK = 1 << 20
MAX_UNKNOWN = 100_000  # distinct unknown client ids tracked; more: the staging path counts them


class NotDirect(Exception):
    """The file cannot be routed by bytes; the load takes the staging path (why: the message)."""


@dataclass(frozen=True)
class Layout:
    """Where a file's fields are: the dataset's columns (``columns``, in the header's order)
    together, and the others (``others``) all before or all after them, so that one
    ``split`` (others first) or ``rsplit`` (others last) at ``len(others)`` commas splits a
    row into the others' fields and the dataset part."""

    columns: tuple[str, ...]
    others: tuple[str, ...]
    others_first: bool

    @classmethod
    def of(cls, names: Sequence[str], dataset_columns: Collection[str]) -> Layout:
        """``names``: the header's column names, lower-cased and checked (shape.header_columns)."""
        n = len(dataset_columns)
        wanted = set(dataset_columns)
        if len(set(names)) != len(names):
            raise NotDirect("the header names a column twice")
        if CLIENT_ID not in names:
            raise NotDirect("the file has no x__client_id")
        if set(names[:n]) == wanted:
            return cls(tuple(names[:n]), tuple(names[n:]), others_first=False)
        if set(names[len(names) - n :]) == wanted:
            return cls(tuple(names[len(names) - n :]), tuple(names[: len(names) - n]), True)
        raise NotDirect("the dataset's columns are not all together at the start or the end")

    def at(self, name: str) -> int:
        """Where the field of ``name`` (one of ``others``) is in a split row."""
        return self.others.index(name) + (0 if self.others_first else 1)

    @property
    def data_at(self) -> int:
        """Where the dataset part is in a split row."""
        return len(self.others) if self.others_first else 0


@dataclass
class Spool:
    """Each client's routed rows, in order: up to ``budget`` bytes in memory, then spilled
    (all of memory at once) to one temporary file as segments per client."""

    budget: int = 32 << 20
    _memory: dict[bytes, bytearray] = field(default_factory=dict)
    _in_memory: int = 0
    _segments: dict[bytes, list[tuple[int, int]]] = field(default_factory=dict)
    _file: tempfile._TemporaryFileWrapper[bytes] | None = None
    _end: int = 0

    def add(self, client: bytes, data: bytes) -> None:
        buffer = self._memory.get(client)
        if buffer is None:
            self._memory[client] = bytearray(data)
        else:
            buffer += data
        self._in_memory += len(data)
        if self._in_memory > self.budget:
            self._spill()

    def _spill(self) -> None:
        try:
            if self._file is None:
                self._file = tempfile.NamedTemporaryFile(prefix="loadbay-route-")  # noqa: SIM115
            for client, buffer in self._memory.items():
                self._file.write(buffer)
                self._segments.setdefault(client, []).append((self._end, len(buffer)))
                self._end += len(buffer)
            self._file.flush()
        except OSError as exc:  # a full disk, say: the staging path uses the database's
            raise NotDirect(f"cannot spill routed rows to a temporary file: {exc}") from exc
        self._memory.clear()
        self._in_memory = 0

    def __contains__(self, client: bytes) -> bool:
        return client in self._memory or client in self._segments

    def read(self, client: bytes) -> Iterator[bytes]:
        """The client's rows in the order they were added, at most READ_CHUNK bytes at a time."""
        for offset, length in self._segments.get(client, ()):
            assert self._file is not None
            for start in range(offset, offset + length, READ_CHUNK):
                yield os.pread(self._file.fileno(), min(READ_CHUNK, offset + length - start), start)
        buffer = self._memory.get(client, b"")
        for start in range(0, len(buffer), READ_CHUNK):
            yield bytes(buffer[start : start + READ_CHUNK])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._memory.clear()


class Router:
    """Splits the data lines of one file (all its parts) by client id into a :class:`Spool`.

    Feed each part's bytes after its header line with :meth:`feed`, then :meth:`end_part`."""

    def __init__(self, layout: Layout, targets: Collection[str], spool: Spool, max_line: int):
        self.layout = layout
        self.spool = spool
        self.rows = 0  # data lines, every client's
        self.bytes = 0  # bytes fed
        self.unknown: set[bytes] = set()  # client ids no target has
        self.without_client = 0
        self.new_clients: list[bytes] = []  # target client ids seen first since last taken
        self._targets = {t.encode() for t in targets}
        self._max_line = max_line
        self._client_at = layout.at(CLIENT_ID)
        self._deleted_at = layout.at(DELETED) if DELETED in layout.others else None
        self._commas = len(layout.columns) - 1  # in a row's dataset part
        self._rest = b""

    def feed(self, data: bytes) -> None:
        self.bytes += len(data)
        buffer = self._rest + data if self._rest else data
        end = buffer.rfind(b"\n") + 1
        self._rest = buffer[end:]
        if len(self._rest) > self._max_line:
            raise NotDirect(f"a line longer than {self._max_line} bytes")
        if end:
            self._route(buffer[:end])

    def end_part(self) -> None:
        """The part's last line may lack its line break."""
        if self._rest:
            last, self._rest = self._rest + b"\n", b""
            self._route(last)

    def _route(self, block: bytes) -> None:
        if b'"' in block or b"\r" in block or b"\x00" in block:
            raise NotDirect("a quote, carriage return or NUL byte")
        if block.startswith(b"\\.\n") or b"\n\\.\n" in block:
            raise NotDirect("a line holding only \\.")
        if not block.isascii():
            try:
                block.decode()
            except UnicodeDecodeError as exc:
                raise NotDirect("bytes that are not UTF-8") from exc
        lines = block.split(b"\n")
        lines.pop()  # after the last line break
        if len(block) > self._max_line and max(map(len, lines)) > self._max_line:
            raise NotDirect(f"a line longer than {self._max_line} bytes")
        groups = self._group(lines)
        self.rows += len(lines)
        for client, parts in groups.items():
            if client in self._targets:
                if client not in self.spool:
                    self.new_clients.append(client)
                parts.append(b"")  # the last row's line break
                self.spool.add(client, b"\n".join(parts))
                continue
            # Never loaded, but a row with too few or too many fields fails the whole file.
            if any(part.count(b",") != self._commas for part in parts):
                raise NotDirect("a row of no target's client id has the wrong number of fields")
            if client:
                self.unknown.add(client)
                if len(self.unknown) > MAX_UNKNOWN:
                    raise NotDirect(f"more than {MAX_UNKNOWN} unknown client ids")
            else:
                self.without_client += len(parts)

    def _group(self, lines: list[bytes]) -> dict[bytes, list[bytes]]:
        """Each client id's rows (their dataset part) in file order. The hot loop: one
        C-level split per row, nothing else that can be done per block."""
        layout = self.layout
        cut = bytes.split if layout.others_first else bytes.rsplit
        n, data, at, deleted = len(layout.others), layout.data_at, self._client_at, self._deleted_at
        groups: dict[bytes, list[bytes]] = {}
        live = _LIVE
        for line in lines:
            fields = cut(line, b",", n)
            if len(fields) <= n:
                raise NotDirect("a row has too few fields")
            if deleted is not None and fields[deleted] not in live:
                raise NotDirect("a row is deleted (x__deleted) or its x__deleted is not false")
            rows = groups.get(fields[at])
            if rows is None:
                groups[fields[at]] = [fields[data]]
            else:
                rows.append(fields[data])
        return groups
