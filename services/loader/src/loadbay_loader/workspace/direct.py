"""Full loads straight into the workspaces' tables, without a staging table.

When every target of a load is ``full`` and its CSV file (plain or ``.gz``) routes by bytes
(routing.py), the loader splits the rows by ``x__client_id`` as it reads the file, then per
workspace with rows: claims and creates (or empties, by DELETE) its table and COPYs the
client's rows into it. Writing the workspaces' tables by COPY is what makes this fast: COPY
writes pages, where ``INSERT ... SELECT`` from a staging writes (and WAL-logs) row by row.

The semantics are the staging path's (loads.py), which this path hands the load to, undoing
everything it did (one savepoint), whenever it cannot keep them exactly:

- the file does not route by bytes (quotes, deleted rows, other header orders...: routing.py);
- COPY refuses a value, or a workspace's table cannot take the load (the staging path fails
  only that workspace, naming file, line and column);
- a connection point or grain value is empty or comes twice for one client (the staging path
  keeps the file's last row of a key). keys.py checks the keys bytes can tell apart while
  COPY parses; PostgreSQL checks the others after the COPYs, in one hashed pass per table.

A load handed over reads its file a second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from loadbay_contracts import WorkspaceLoadRequested, WorkspaceLoadResult
from loadbay_contracts.distribution import WorkspaceTarget
from loadbay_loader.metrics import WORKSPACE_LOADS
from loadbay_loader.streaming import limits
from loadbay_loader.warehouse.copy_errors import RowError
from loadbay_loader.workspace import store
from loadbay_loader.workspace.keys import KeyWatch
from loadbay_loader.workspace.routing import Layout, NotDirect, Router, Spool
from loadbay_loader.workspace.shape import SYSTEM_COLUMNS, Shape
from loadbay_loader.workspace.sources import Opener, SourceUnavailable, file_kind, open_part
from loadbay_loader.workspace.staging import Staged
from loadbay_loader.workspace.staging_store import StagingColumn
from loadbay_loader.workspace.store import Existing
from loadbay_loader.workspace.tables import (
    CONNECTION_LOST,
    WorkspaceFailure,
    check_schema,
    ensure_table,
)

log = logging.getLogger(__name__)


@dataclass
class Direct:
    """A load done directly: its results, the file's unknown client ids (sorted) and how
    many rows had none, and the file's size (``Staged`` for the load's record)."""

    results: list[WorkspaceLoadResult]
    unknown: list[str]
    without_client: int
    staged: Staged


def applies(request: WorkspaceLoadRequested) -> bool:
    return all(t.mode == "full" for t in request.targets) and all(
        file_kind(key) in ("csv", "gz") for key in request.keys
    )


async def load(
    conn: asyncpg.Connection, open_object: Opener, request: WorkspaceLoadRequested, shape: Shape
) -> Direct | None:
    """Carry out the load directly, or None: then nothing has changed and the staging path
    must carry it out. Raises only what the staging path would raise too (the database gone)."""
    if not applies(request):
        return None
    clock = time.perf_counter()
    spool = Spool()
    try:
        async with conn.transaction():  # a savepoint: handing over undoes all of it
            tables = _Tables(conn, request, shape)
            try:
                router = await _route(open_object, request, shape, spool, tables)
            except BaseException:
                await tables.done(abandon=True)
                raise
            await tables.done()
            seconds = time.perf_counter() - clock
            staged = Staged("", True, router.rows, router.bytes, seconds=seconds)
            results = await _copy(conn, request, shape, router, tables.deleted)
    except (NotDirect, RowError, SourceUnavailable, WorkspaceFailure) as exc:
        log.info("load %s takes the staging path: %s", request.request_id, exc)
        return None
    except asyncpg.PostgresError as exc:
        if isinstance(exc, CONNECTION_LOST):
            raise
        log.info("load %s takes the staging path: %s", request.request_id, exc)
        return None
    finally:
        spool.close()
    unknown = sorted(c.decode() for c in router.unknown)
    return Direct(results, unknown, router.without_client, staged)


class _Tables:
    """Gets each workspace's table ready (claimed, created or emptied) as soon as the file
    shows rows for its client, in a task: the database does that while the loader reads and
    routes the rest of the file. A workspace without rows is not touched."""

    def __init__(self, conn: asyncpg.Connection, request: WorkspaceLoadRequested, shape: Shape):
        self.deleted: dict[str, int] = {}  # workspace id -> rows deleted from its table
        self._conn, self._request, self._shape = conn, request, shape
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._abandoned = False
        self._task = asyncio.create_task(self._prepare())

    def add(self, clients: list[bytes]) -> None:
        for client in clients:
            self._queue.put_nowait(client)
        clients.clear()

    async def done(self, *, abandon: bool = False) -> None:
        """Wait for every table to be ready (raising what went wrong), or with ``abandon`` for
        the task to stop. Always awaited: the connection is the task's until then."""
        self._abandoned = abandon
        self._queue.put_nowait(None)
        if abandon:
            with contextlib.suppress(Exception):
                await self._task
        else:
            await self._task

    async def _prepare(self) -> None:
        conn, request, table = self._conn, self._request, self._request.dataset
        key = self._shape.key if self._shape.keyed else ()
        existing = await store.existing_tables(
            conn, [t.schema_name for t in request.targets], table, key
        )
        by_client: dict[bytes, list[WorkspaceTarget]] = {}
        for target in request.targets:
            by_client.setdefault(target.client_id.encode(), []).append(target)
        failure: BaseException | None = None
        while (batch := await self._batch()) is not None:
            if failure is not None or self._abandoned:
                continue  # drain until done()
            try:
                await self._ready([t for c in batch for t in by_client[c]], existing)
            except Exception as exc:
                failure = exc
        if failure is not None:
            raise failure

    async def _batch(self) -> list[bytes] | None:
        """The clients queued so far (at least one), or None when routing is over."""
        batch = [await self._queue.get()]
        while not self._queue.empty():
            batch.append(self._queue.get_nowait())
        if None in batch:
            self._queue.put_nowait(None)  # seen again once this batch is done
            batch = [c for c in batch if c is not None]
            if not batch:
                return None
        return [c for c in batch if c is not None]

    async def _ready(self, targets: list[WorkspaceTarget], existing: dict[str, Existing]) -> None:
        """New tables: claimed and created, all in two round trips. Existing tables: brought
        to the dataset's columns and emptied, one by one."""
        conn, table, shape = self._conn, self._request.dataset, self._shape
        for target in targets:
            check_schema(target.schema_name)
        new = [t.schema_name for t in targets if not _has(existing, t.schema_name)]
        if new:
            columns = [StagingColumn(n, shape.types[n]) for n in shape.columns]
            await store.claim_all(conn, new, table)
            await store.create_tables(conn, new, table, columns)
        for target in targets:
            schema = target.schema_name
            if _has(existing, schema):
                await ensure_table(conn, schema, table, shape, existing[schema])
                self.deleted[target.workspace_id] = await store.delete_all(conn, schema, table)
            else:
                self.deleted[target.workspace_id] = 0


def _has(existing: dict[str, Existing], schema: str) -> bool:
    return schema in existing and bool(existing[schema].columns)


async def _route(
    open_object: Opener,
    request: WorkspaceLoadRequested,
    shape: Shape,
    spool: Spool,
    tables: _Tables,
) -> Router:
    """Read every part of the file once, routing its rows into ``spool``."""
    router: Router | None = None
    everything_nullable = {name: True for name in (*shape.columns, *SYSTEM_COLUMNS)}
    for key in request.keys:
        async with open_part(open_object, key, shape, everything_nullable) as part:
            layout = Layout.of([c.name for c in part.columns], shape.columns)
            if router is None:
                targets = [t.client_id for t in request.targets]
                max_line = limits.current().max_record_bytes
                router = Router(layout, targets, spool, max_line)
            elif layout != router.layout:
                raise NotDirect("the parts' headers differ")
            end = part.head.find(b"\n")
            if end < 0 or b'"' in part.head[:end] or b"\r" in part.head[:end]:
                raise NotDirect("a quoted or CRLF header")
            router.bytes += end + 1
            router.feed(part.head[end + 1 :])
            tables.add(router.new_clients)
            async for chunk in part.chunks:
                router.feed(chunk)
                tables.add(router.new_clients)
            router.end_part()
            tables.add(router.new_clients)
    assert router is not None  # a request names at least one file
    return router


async def _copy(
    conn: asyncpg.Connection,
    request: WorkspaceLoadRequested,
    shape: Shape,
    router: Router,
    deleted: dict[str, int],
) -> list[WorkspaceLoadResult]:
    """COPY each client's rows into its workspaces' ready tables; the results."""
    table, columns = request.dataset, router.layout.columns
    non_text = [n for n in columns if shape.types[n] != "text"]
    loading = [t for t in request.targets if t.workspace_id in deleted]
    copied: dict[str, int] = {}
    undecided: list[str] = []
    positions = [columns.index(k) for k in shape.key]
    for target in loading:
        watch = KeyWatch(positions, [shape.types[k] for k in shape.key]) if shape.keyed else None
        rows = _rows_of(router.spool, target.client_id.encode(), watch)
        copied[target.workspace_id] = await store.copy_rows(
            conn, target.schema_name, table, columns, rows, non_text=non_text
        )
        if watch is not None and not watch.decided:
            undecided.append(target.schema_name)
    if undecided:
        broken = await store.tables_breaking_key(conn, undecided, table, shape.key)
        if broken:
            raise NotDirect(f"an empty or repeated key in {len(broken)} workspace(s)")
    results = []
    for target in request.targets:
        outcome = "succeeded" if target.workspace_id in copied else "untouched"
        WORKSPACE_LOADS.labels(target.mode, outcome).inc()
        results.append(
            WorkspaceLoadResult(
                workspace_id=target.workspace_id,
                status="succeeded",
                rows_upserted=copied.get(target.workspace_id, 0),
                rows_deleted=deleted.get(target.workspace_id, 0),
            )
        )
    return results


async def _rows_of(spool: Spool, client: bytes, watch: KeyWatch | None) -> AsyncIterator[bytes]:
    """The client's rows for COPY; ``watch`` sees each chunk after PostgreSQL has it, so it
    works while PostgreSQL parses."""
    for chunk in spool.read(client):
        yield chunk
        if watch is not None:
            watch.see(chunk)
