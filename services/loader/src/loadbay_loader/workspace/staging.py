"""Staging a workspace load's source file, and re-checking it row by row when it has a bad value.

The file is first streamed by COPY into a typed staging table (PostgreSQL checks every value).
When that fails on a value (a row error past the header), the file is read again into an
all-``text`` staging table and every value is checked in SQL (``pg_input_is_valid``):

- a file with ``x__client_id``: each target client id whose rows hold a bad value fails with
  the first one (file, line, column, value); the other workspaces load the file's valid rows;
- a file without it: the first bad value fails every workspace, as before.

A field that is exactly ``NULL`` in a non-text column is read as NULL (the seed writes its
delete tables that way); the typed COPY refuses it, so such a file takes the second path. In
a text column ``NULL`` is the text NULL. Lines count from 1 = the header; in the second path
a record with quoted line breaks counts as one line.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg

from loadbay_contracts import WorkspaceLoadRequested
from loadbay_loader.streaming import objects
from loadbay_loader.warehouse import tabular
from loadbay_loader.warehouse.copy_errors import RowError
from loadbay_loader.workspace import staging_store as store
from loadbay_loader.workspace.shape import SYSTEM_COLUMNS, Shape
from loadbay_loader.workspace.sources import CSV, Opener, open_part


@dataclass
class Staged:
    table: str  # the file's rows as read, partitioned by client id (staging_store)
    routed: bool  # the file has x__client_id
    rows: int
    bytes: int
    seconds: float = 0.0  # reading the file into the staging (and re-checking it)
    # (key, first _line of that part): to turn a staging _line into a file and line.
    parts: list[tuple[str, int]] = field(default_factory=list)
    # Client id -> why its workspace fails (a bad value in its rows).
    bad_clients: dict[str, str] = field(default_factory=dict)
    # For a file without x__client_id, every workspace's rows, built once per key (one row
    # per key; no key: every row) from the staged rows (see loads._rows).
    batches: dict[tuple[str, ...], store.Rows] = field(default_factory=dict)

    def temp_tables(self) -> list[str]:
        return [*(f"{self.table}_b{i}" for i in range(len(self.batches))), self.table]

    def place(self, line: int) -> tuple[str, int]:
        key, first = next((k, f) for k, f in reversed(self.parts) if f <= line)
        return key, line - first + 2  # line 1 is the header


def _checks(shape: Shape) -> list[store.StagingColumn]:
    """The staging columns: the dataset's (a key column may not be empty), then the system's."""
    key = set(shape.key) if shape.keyed else set()
    checks = [store.StagingColumn(n, shape.types[n], n in key) for n in shape.columns]
    return checks + [store.StagingColumn(n, t) for n, t in SYSTEM_COLUMNS.items()]


async def stage_checked(
    conn: asyncpg.Connection,
    open_object: Opener,
    request: WorkspaceLoadRequested,
    shape: Shape,
    staging: str,
) -> Staged:
    """Stage the file (typed); on a bad value, re-check it row by row (see the module doc).
    Raises RowError when the file fails every workspace."""
    try:
        async with conn.transaction():  # a savepoint: a file that fails leaves nothing behind
            return await stage(conn, open_object, request, shape, staging, lenient=False)
    except RowError as exc:
        if exc.line is None or exc.line <= 1:
            raise
        first = exc
    checks = _checks(shape)
    async with conn.transaction():
        raw = await stage(conn, open_object, request, shape, f"{staging}_raw", lenient=True)
        clients = sorted({t.client_id for t in request.targets})
        found = await store.first_bad_rows(
            conn, raw.table, checks, routed=raw.routed, client_ids=clients
        )
        if found and not raw.routed:
            raise first
        for row in found:
            key, line = raw.place(row.line)
            name = row.column.name
            reason = row.message or f'column "{name}" requires a value but the field is empty'
            error = RowError(key, reason, line=line, column=name, value=row.value)
            raw.bad_clients[row.client_id or ""] = str(error)
        partitions = store.partition_groups(clients)
        await store.create_staging(conn, staging, checks, partitions=partitions)
        await store.copy_valid_rows(conn, raw.table, staging, checks)
        await store.drop_temp(conn, raw.table)
        if raw.routed:
            await store.index_clients(conn, staging, partitions)
    return Staged(staging, raw.routed, raw.rows, raw.bytes, parts=raw.parts,
                  bad_clients=raw.bad_clients)  # fmt: skip


async def stage(
    conn: asyncpg.Connection,
    open_object: Opener,
    request: WorkspaceLoadRequested,
    shape: Shape,
    staging: str,
    *,
    lenient: bool,
) -> Staged:
    """COPY every part of the file into ``staging``: typed and partitioned by the targets'
    client ids, or all text (not partitioned) with ``lenient``."""
    # A connection point or grain identifies a row: an empty one fails the file (line, column).
    base = _checks(shape)
    partitions: list[list[str]] = []
    if lenient:
        base = [store.StagingColumn(c.name, "text") for c in base]
    else:
        partitions = store.partition_groups([t.client_id for t in request.targets])
    await store.create_staging(conn, staging, base, partitions=partitions)
    nullable = {c.name: not c.not_null for c in base}
    routed: bool | None = None
    first = request.keys[0]
    rows = size = 0
    parts: list[tuple[str, int]] = []
    for key in request.keys:
        async with open_part(open_object, key, shape, nullable) as part:
            has_client = any(c.name == store.CLIENT_ID for c in part.columns)
            if routed is None:
                routed = has_client
            elif routed != has_client:
                raise RowError(
                    key,
                    "all parts must have the same columns, and x__client_id is"
                    f" {'missing here but in' if routed else 'here but not in'} {first}",
                    line=1,
                )
            for extra in part.extras:
                await store.add_staging_column(conn, staging, extra)
            columns = part.columns
            if lenient:
                columns = [tabular.Column(c.name, "text") for c in columns]
            parts.append((key, rows + 1))
            copied = await tabular.copy_csv(
                conn,
                "pg_temp",
                staging,
                columns,
                CSV,
                _chain(part.head, part.chunks),
                file_name=key,
                reopen=part.reopen,
            )
        rows += copied.rows
        size += copied.bytes
    if routed:
        await store.index_clients(conn, staging, partitions)
    return Staged(staging, bool(routed), rows, size, parts=parts)


async def _chain(head: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        yield head
        async for chunk in rest:
            yield chunk
    finally:
        await objects.aclose(rest)
