"""Loads into client workspaces (GoodData ADD v2 semantics): one source file, many workspaces.

A ``workspace.load.requested`` names one source file (all parts of one timestamp), the
dataset's columns and the target workspaces, each with its load mode. When every target is
``full`` and the file routes by bytes, the rows go straight into the workspaces' tables
(direct.py), with the results the steps below would give. Otherwise the loader:

1. streams the file once into a session-local staging table by COPY (tabular.copy_csv:
   PostgreSQL types and checks every value; a bad one names file, line, column and value):
   ``.csv``, ``.gz``, ``.zip`` (one CSV inside) or ``.parquet`` (turned into CSV by pyarrow,
   batch by batch). The staging is partitioned by the targets' client ids, so each workspace
   reads only its partition. The header must name every dataset column; any other column
   needs a documented prefix, and is ignored. A connection point or grain value may not be
   empty. A file that cannot be loaded fails every target with the reason; nothing changes.
   A bad value in rows routed by ``x__client_id`` fails only that client's workspace
   (staging.py re-checks such a file row by row); ``NULL`` in a non-text column is NULL.
2. per target workspace, in a savepoint of its own (a workspace that fails undoes only its
   own changes), creates ``<schema_name>.<dataset>`` if needed, takes its rows (one per key,
   the file's last: last row wins; the key being the connection point, else the fact table
   grain, else all attributes (a__, l__, r__, d__; facts ignored); a full load of a dataset
   with neither connection point nor grain takes every row), then
   - ``full``: deletes every row and inserts the live rows (x__deleted false or empty);
   - ``inc``: in one statement, the x__deleted rows delete their matches and the others
     upsert (``INSERT ... ON CONFLICT`` on the key's unique index, which the first
     incremental load builds; without connection point or grain: a live row replaces the
     rows with its attributes).
   Rows of a file with an ``x__client_id`` column go to the workspace of that client id; a
   workspace with no rows in such a file is not touched (and succeeds with 0/0). A file
   without one goes to every target: its rows are collapsed per key once for all of them.
3. emits one ``workspace.load.completed`` with a result per target through the outbox, in
   the consumer's transaction: results and effects commit together, exactly once.

Python reads only the header line; the rows go from object storage to COPY, and from staging
to the workspaces in set-based SQL (staging_store.py, store.py).
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime

import asyncpg

from loadbay_contracts import WorkspaceLoadCompleted, WorkspaceLoadRequested, WorkspaceLoadResult
from loadbay_contracts.distribution import WorkspaceTarget
from loadbay_loader import repository
from loadbay_loader.metrics import (
    BYTES_LOADED,
    LOAD_SECONDS,
    LOADS,
    ROWS_LOADED,
    WORKSPACE_LOADS,
    WORKSPACE_ROWS,
)
from loadbay_loader.warehouse.copy_errors import RowError
from loadbay_loader.workspace import direct, staging_store, store
from loadbay_loader.workspace import staging as staging_
from loadbay_loader.workspace.shape import InvalidRequest, Shape
from loadbay_loader.workspace.sources import Opener, SourceUnavailable, file_kind
from loadbay_loader.workspace.staging import Staged
from loadbay_loader.workspace.tables import (
    CONNECTION_LOST,
    WorkspaceFailure,
    check_schema,
    ensure_table,
)
from loadbay_platform import outbox
from loadbay_platform.reasons import truncate

SERVICE = "loader"
log = logging.getLogger(__name__)

MAX_UNKNOWN_CLIENT_IDS = 1000  # listed in the event; the log has the total


# --------------------------------------------------------------------------- the load


async def load_into_workspaces(
    conn: asyncpg.Connection, open_object: Opener, request: WorkspaceLoadRequested
) -> WorkspaceLoadCompleted:
    """Carry out ``request`` inside the caller's transaction and emit its results.

    A file that cannot be read or loaded, and a workspace that cannot take it, are results
    (failed, with the reason). What is raised is a failure of the database (connection lost,
    disk full...): the caller's transaction then undoes everything, and the event is retried."""
    started = datetime.now(UTC)
    clock = time.perf_counter()
    unknown: list[str] = []
    staged: Staged | None = None
    try:
        shape = Shape.of(request)
        done = await direct.load(conn, open_object, request, shape)
        if done is not None:
            results, staged = done.results, done.staged
            unknown = _unknown(request, done.unknown, len(done.unknown), done.without_client)
        else:
            results, unknown, staged = await _load_staged(conn, open_object, request, shape)
    except (RowError, SourceUnavailable, InvalidRequest) as exc:
        reason = str(exc)
        log.warning(
            "load %s of %s fails every workspace: %s", request.request_id, request.keys, reason
        )
        results = [_failed(t, reason) for t in request.targets]
    completed = WorkspaceLoadCompleted(
        request_id=request.request_id,
        run_id=request.run_id,
        data_product_id=request.data_product_id,
        dataset=request.dataset,
        timestamp=request.timestamp,
        results=tuple(results),
        unknown_client_ids=tuple(unknown),
        started_at=started,
        finished_at=datetime.now(UTC),
    )
    await _record(conn, request, completed, staged)
    await outbox.enqueue(conn, completed, service=SERVICE, subject=request.dataset)
    _observe(request, completed, staged, time.perf_counter() - clock)
    return completed


def _failed(target: WorkspaceTarget, reason: str) -> WorkspaceLoadResult:
    return WorkspaceLoadResult(workspace_id=target.workspace_id, status="failed", reason=reason)


async def fail_unhandled(
    conn: asyncpg.Connection, request: WorkspaceLoadRequested, reason: str
) -> None:
    """The load could not be carried out at all (its request was dead-lettered): every target
    workspace fails with the reason, so the distribution run ends."""
    now = datetime.now(UTC)
    why = truncate(f"the loader could not carry out the load: {reason}")
    completed = WorkspaceLoadCompleted(
        request_id=request.request_id,
        run_id=request.run_id,
        data_product_id=request.data_product_id,
        dataset=request.dataset,
        timestamp=request.timestamp,
        results=tuple(
            WorkspaceLoadResult(workspace_id=t.workspace_id, status="failed", reason=why)
            for t in request.targets
        ),
        started_at=now,
        finished_at=now,
    )
    await outbox.enqueue(conn, completed, service=SERVICE, subject=request.dataset)


async def _load_staged(
    conn: asyncpg.Connection, open_object: Opener, request: WorkspaceLoadRequested, shape: Shape
) -> tuple[list[WorkspaceLoadResult], list[str], Staged]:
    """The load through a staging table: (results, unknown client ids, the staging)."""
    clock = time.perf_counter()
    staged = await staging_.stage_checked(
        conn, open_object, request, shape, f"_lb_ws_{uuid.uuid4().hex[:12]}"
    )
    staged.seconds = time.perf_counter() - clock
    with_rows: set[str] = set()
    unknown: list[str] = []
    if staged.routed:
        with_rows, unknown = await _route(conn, staged, request)
    key = shape.key if shape.keyed else ()
    schemas = [t.schema_name for t in request.targets]
    existing = await store.existing_tables(conn, schemas, request.dataset, key)
    results = [
        _failed(target, staged.bad_clients[target.client_id])
        if target.client_id in staged.bad_clients
        else await _load_workspace(conn, request, shape, staged, with_rows, existing, target)
        for target in request.targets
    ]
    await staging_store.drop_temp(conn, *staged.temp_tables())
    return results, unknown, staged


async def _rows(
    conn: asyncpg.Connection, shape: Shape, staged: Staged, target: WorkspaceTarget, table: str
) -> staging_store.Rows:
    """Where the target's rows are: one per key (a full load of a dataset without connection
    point or grain: every row), its client id's partition of the staging, or for a file
    without x__client_id a batch built once for all. Outside the target's savepoint: a batch
    outlives a workspace that fails."""
    key = () if target.mode == "full" and not shape.keyed else shape.key
    if target.mode == "inc" and not key:
        raise WorkspaceFailure(
            f"{target.schema_name}.{table}: an incremental load needs a connection"
            " point, a fact table grain or attributes to match rows by, and the dataset has none"
        )
    text = {name for name, type_ in shape.types.items() if type_ == "text"}
    if staged.routed:
        return staging_store.client_rows(
            staged.table, shape.columns, key, text_columns=text, client_id=target.client_id
        )
    if key not in staged.batches:
        staged.batches[key] = await staging_store.build_batch(
            conn,
            staged.table,
            f"{staged.table}_b{len(staged.batches)}",
            shape.columns,
            key,
            text_columns=text,
        )
    return staged.batches[key]


async def _route(
    conn: asyncpg.Connection, staged: Staged, request: WorkspaceLoadRequested
) -> tuple[set[str], list[str]]:
    """Which targets have rows in the file, and which client ids match no target."""
    clients = sorted({t.client_id for t in request.targets})
    table = staged.table
    with_rows = await staging_store.clients_with_rows(conn, table, clients)
    unknown, total = await staging_store.unknown_client_ids(
        conn, table, clients, MAX_UNKNOWN_CLIENT_IDS
    )
    without = await staging_store.rows_without_client_id(conn, table)
    return with_rows, _unknown(request, unknown, total, without)


def _unknown(
    request: WorkspaceLoadRequested, unknown: list[str], total: int, without_client: int
) -> list[str]:
    """Log the file's rows that go to no workspace; the first unknown client ids, for the event."""
    if total:
        log.warning(
            "load %s: %d x__client_id value(s) match no target of the load (first: %s)",
            request.request_id,
            total,
            ", ".join(unknown[:10]),
        )
    if without_client:
        log.warning("load %s: rows without an x__client_id go to no workspace", request.request_id)
    return unknown[:MAX_UNKNOWN_CLIENT_IDS]


async def _load_workspace(
    conn: asyncpg.Connection,
    request: WorkspaceLoadRequested,
    shape: Shape,
    staged: Staged,
    with_rows: set[str],
    existing: dict[str, store.Existing],
    target: WorkspaceTarget,
) -> WorkspaceLoadResult:
    schema, table = target.schema_name, request.dataset
    if staged.routed and target.client_id not in with_rows:
        # Nothing for this client in the file: leave its data as it is.
        WORKSPACE_LOADS.labels(target.mode, "untouched").inc()
        return WorkspaceLoadResult(workspace_id=target.workspace_id, status="succeeded")
    try:
        check_schema(schema)
        rows = await _rows(conn, shape, staged, target, table)
        async with conn.transaction():  # a savepoint: a failure undoes this workspace only
            if target.mode == "full":
                new = await ensure_table(conn, schema, table, shape, existing.get(schema))
                upserted, deleted = await store.rewrite(
                    conn, schema, table, shape.columns, rows, empty=new
                )
            else:
                await ensure_table(conn, schema, table, shape, existing.get(schema), index=True)
                upserted, deleted = await store.merge(
                    conn, schema, table, shape.columns, rows, shape.key, by_key=shape.keyed
                )
    except WorkspaceFailure as exc:
        WORKSPACE_LOADS.labels(target.mode, "failed").inc()
        return _failed(target, str(exc))
    except asyncpg.PostgresError as exc:
        if isinstance(exc, CONNECTION_LOST):
            raise
        WORKSPACE_LOADS.labels(target.mode, "failed").inc()
        detail = f" ({exc.detail})" if getattr(exc, "detail", None) else ""
        return _failed(target, f"{schema}.{table}: {exc}{detail}")
    WORKSPACE_LOADS.labels(target.mode, "succeeded").inc()
    return WorkspaceLoadResult(
        workspace_id=target.workspace_id,
        status="succeeded",
        rows_upserted=upserted,
        rows_deleted=deleted,
    )


async def _record(
    conn: asyncpg.Connection,
    request: WorkspaceLoadRequested,
    completed: WorkspaceLoadCompleted,
    staged: Staged | None,
) -> None:
    failed = [r for r in completed.results if r.status == "failed"]
    await repository.record_load(
        conn,
        load_id=request.request_id,
        request_type=WorkspaceLoadRequested.TYPE,
        dataset_id=f"{request.data_product_id}/{request.dataset}",
        target=f"{len(request.targets)} client workspace(s)",
        status="failed" if failed else "succeeded",
        files=len(request.keys),
        rows=staged.rows if staged else 0,
        bytes_=staged.bytes if staged else 0,
        error={"message": failed[0].reason, "failed_workspaces": len(failed)} if failed else None,
        started_at=completed.started_at,
        finished_at=completed.finished_at,
    )


def _observe(
    request: WorkspaceLoadRequested,
    completed: WorkspaceLoadCompleted,
    staged: Staged | None,
    seconds: float,
) -> None:
    failed = sum(r.status == "failed" for r in completed.results)
    LOADS.labels("workspace", "failed" if failed else "succeeded").inc()
    LOAD_SECONDS.labels("workspace").observe(seconds)
    upserted = sum(r.rows_upserted for r in completed.results)
    deleted = sum(r.rows_deleted for r in completed.results)
    WORKSPACE_ROWS.labels("upserted").inc(upserted)
    WORKSPACE_ROWS.labels("deleted").inc(deleted)
    if staged is not None and failed < len(completed.results):
        file_type = file_kind(request.keys[0])
        ROWS_LOADED.labels(file_type).inc(upserted)
        BYTES_LOADED.labels(file_type).inc(staged.bytes)
    log.info(
        "load %s of %s (%s, %d file(s)) into %d workspace(s): %d failed, %d rows upserted,"
        " %d deleted, %.1fs (staging %.1fs)",
        request.request_id,
        request.dataset,
        request.timestamp,
        len(request.keys),
        len(completed.results),
        failed,
        upserted,
        deleted,
        seconds,
        staged.seconds if staged else 0.0,
    )
