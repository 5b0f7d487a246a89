"""Loads into client workspaces (GoodData ADD v2 semantics): one source file, many workspaces.

A ``load.requested`` names one source file (all parts of one timestamp), the dataset's columns
and the target workspaces, each with its load mode. The loader:

1. streams the file once into a session-local staging table by COPY (tabular.copy_csv:
   PostgreSQL types and checks every value; a bad one names file, line, column and value):
   ``.csv``, ``.gz``, ``.zip`` (one CSV inside) or ``.parquet`` (turned into CSV by pyarrow,
   batch by batch). The header must name every dataset column; any other column needs a
   documented prefix, and is ignored. A connection point or grain value may not be empty.
   A file that cannot be loaded fails every target with the reason; nothing changes.
2. sorts it once by client id into a *batch*: one row per (x__client_id, key), the file's
   last (last row wins), the key being the connection point, else the fact table grain, else
   all attributes (a__, l__, r__, d__; facts ignored). A full load of a dataset with neither
   connection point nor grain takes every row instead (there is no key to collapse on).
3. per target workspace, in a savepoint of its own (a workspace that fails undoes only its
   own changes), creates ``<schema_name>.<dataset>`` if needed (unique index on the
   connection point or grain), then
   - ``full``: deletes every row and inserts the live rows (x__deleted false or empty);
   - ``inc``: deletes the rows matching a row of the batch and inserts the live ones: the
     x__deleted rows delete, the others upsert.
   Rows of a file with an ``x__client_id`` column go to the workspace of that client id; a
   workspace with no rows in such a file is not touched (and succeeds with 0/0).
4. emits one ``workspace.load.completed`` with a result per target through the outbox, in
   the consumer's transaction: results and effects commit together, exactly once.

Python reads only the header line; the rows go from object storage to COPY, and from staging
to the workspaces in set-based SQL (workspace_store.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
import tempfile
import time
import uuid
import zipfile
import zlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import asyncpg
from botocore.exceptions import BotoCoreError, ClientError

from loadbay_contracts import LoadRequested, WorkspaceLoadCompleted, WorkspaceLoadResult
from loadbay_contracts.distribution import WorkspaceTarget
from loadbay_loader import repository, tabular
from loadbay_loader import workspace_store as store
from loadbay_loader.copy_errors import RowError
from loadbay_loader.metrics import (
    BYTES_LOADED,
    LOAD_SECONDS,
    LOADS,
    ROWS_LOADED,
    WORKSPACE_LOADS,
    WORKSPACE_ROWS,
)
from loadbay_loader.streaming import limits, objects
from loadbay_loader.streaming.compression import OutputGuard, decompressed
from loadbay_loader.streaming.limits import UnreadableFile

# tabular's own header reader, so the header is read exactly as copy_csv will read it.
from loadbay_loader.tabular import _read_header
from loadbay_platform import outbox
from loadbay_platform.reasons import truncate

SERVICE = "loader"
log = logging.getLogger(__name__)

#: A source: the raw bytes of the object under ``key`` (the handler's reads S3).
Opener = Callable[[str], AsyncIterator[bytes]]

DATASET_PREFIXES = ("cp__", "a__", "l__", "f__", "r__", "d__")
ATTRIBUTE_PREFIXES = ("a__", "l__", "r__", "d__")
#: System columns a file may have, and their staging types. x__timestamp is the data
#: warehouse variant's cursor: object storage takes the timestamp from the file name.
SYSTEM_COLUMNS: dict[str, tabular.ColumnType] = {
    store.CLIENT_ID: "text",
    store.DELETED: "boolean",
    "x__timestamp": "text",
}
CSV = tabular.CsvOptions()  # ADD v2 source files: comma-separated UTF-8 with a header line
MAX_UNKNOWN_CLIENT_IDS = 1000  # listed in the event; the log has the total
SPOOL_CHUNK = 1 << 20
PARQUET_BATCH_ROWS = 65_536
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Workspaces never write into PostgreSQL's own schemas or the services' (loadbay_<service>).
_RESERVED_SCHEMA = re.compile(r"^(pg_|information_schema$|loadbay_)")
# The connection is gone: the whole event is retried, not one workspace failed.
_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)


class SourceUnavailable(Exception):
    """The source object cannot be read: deleted between listing and loading, no access,
    object storage unreachable. ADD v2 counts that as a failed load like any other."""

    def __init__(self, location: str, detail: str, *, gone: bool = False) -> None:
        hint = "; it may have been deleted after the distribution listed it" if gone else ""
        super().__init__(f"{location}: cannot read the source file ({detail}){hint}")


class InvalidRequest(Exception):
    """The request contradicts itself (e.g. a grain column the dataset does not have)."""


class WorkspaceFailure(Exception):
    """This workspace cannot take the load; the others can."""


@dataclass(frozen=True)
class Shape:
    """What the request's dataset means for loading: its columns and how rows are matched."""

    columns: tuple[str, ...]
    types: dict[str, tabular.ColumnType]
    key: tuple[str, ...]  # connection point, else grain, else all attributes
    keyed: bool  # connection point or grain: never empty, unique in the workspace's table

    @classmethod
    def of(cls, request: LoadRequested) -> Shape:
        names = [c.name for c in request.columns]
        if len(set(names)) != len(names):
            raise InvalidRequest(f"dataset {request.dataset}: a column is declared twice")
        points = [n for n in names if n.startswith("cp__")]
        if len(points) > 1:
            raise InvalidRequest(
                f"dataset {request.dataset}: more than one connection point ({', '.join(points)})"
            )
        bad = [g for g in request.grain if g not in names or not g.startswith(ATTRIBUTE_PREFIXES)]
        if bad:
            raise InvalidRequest(
                f"dataset {request.dataset}: grain column(s) {', '.join(bad)} are not attributes"
                " of the dataset"
            )
        types = {c.name: c.type for c in request.columns}
        if points:
            return cls(tuple(names), types, tuple(points), keyed=True)
        if request.grain:
            return cls(tuple(names), types, tuple(request.grain), keyed=True)
        attributes = tuple(n for n in names if n.startswith(ATTRIBUTE_PREFIXES))
        return cls(tuple(names), types, attributes, keyed=False)


@dataclass
class Staged:
    table: str  # the file's rows as read
    routed: bool  # the file has x__client_id
    rows: int
    bytes: int
    # Built from the staged rows for the targets' modes (see _prepare), ordered by client id.
    batch: str | None = None  # one row per (client id, key), the file's last
    all_rows: str | None = None  # every row: full loads of a dataset without a key

    def temp_tables(self) -> list[str]:
        return [t for t in (self.batch, self.all_rows, self.table) if t]


# --------------------------------------------------------------------------- the load


async def load_into_workspaces(
    conn: asyncpg.Connection, open_object: Opener, request: LoadRequested
) -> WorkspaceLoadCompleted:
    """Carry out ``request`` inside the caller's transaction and emit its results.

    A file that cannot be read or loaded, and a workspace that cannot take it, are results
    (failed, with the reason). What is raised is a failure of the database (connection lost,
    disk full...): the caller's transaction then undoes everything, and the event is retried."""
    started = datetime.now(UTC)
    clock = time.perf_counter()
    staging = f"_lb_ws_{uuid.uuid4().hex[:12]}"
    unknown: list[str] = []
    staged: Staged | None = None
    try:
        shape = Shape.of(request)
        async with conn.transaction():  # a savepoint: a file that fails leaves nothing behind
            staged = await _stage(conn, open_object, request, shape, staging)
    except (RowError, SourceUnavailable, InvalidRequest) as exc:
        reason = str(exc)
        log.warning(
            "load %s of %s fails every workspace: %s", request.request_id, request.keys, reason
        )
        results = [_failed(t, reason) for t in request.targets]
    else:
        await _prepare(conn, request, shape, staged)
        counts: dict[str, int] = {}
        if staged.routed:
            counts, unknown = await _route(conn, staged, request)
        results = [
            await _load_workspace(conn, request, shape, staged, counts, target)
            for target in request.targets
        ]
        await store.drop_temp(conn, *staged.temp_tables())
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


async def fail_unhandled(conn: asyncpg.Connection, request: LoadRequested, reason: str) -> None:
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


async def _stage(
    conn: asyncpg.Connection,
    open_object: Opener,
    request: LoadRequested,
    shape: Shape,
    staging: str,
) -> Staged:
    # A connection point or grain identifies a row: an empty one fails the file (line, column).
    base = [
        store.StagingColumn(n, shape.types[n], shape.keyed and n in shape.key)
        for n in shape.columns
    ]
    base += [store.StagingColumn(n, t) for n, t in SYSTEM_COLUMNS.items()]
    await store.create_staging(conn, staging, base)
    nullable = {c.name: not c.not_null for c in base}
    routed: bool | None = None
    first = request.keys[0]
    rows = size = 0
    for key in request.keys:
        async with _csv_reader(open_object, key) as reader:
            chunks = objects.prefetch(reader())
            try:
                head, names = await _read_header(chunks, CSV, key)
                columns, extras = _header_columns(names, shape, nullable, key)
                has_client = any(c.name == store.CLIENT_ID for c in columns)
                if routed is None:
                    routed = has_client
                elif routed != has_client:
                    raise RowError(
                        key,
                        "all parts must have the same columns, and x__client_id is"
                        f" {'missing here but in' if routed else 'here but not in'} {first}",
                        line=1,
                    )
                for extra in extras:
                    await store.add_staging_column(conn, staging, extra)
            except BaseException:  # until copy_csv owns the stream, stop the read-ahead here
                await objects.aclose(chunks)
                raise
            copied = await tabular.copy_csv(
                conn,
                "pg_temp",
                staging,
                columns,
                CSV,
                _chain(head, chunks),
                file_name=key,
                reopen=reader,
            )
        rows += copied.rows
        size += copied.bytes
    return Staged(staging, bool(routed), rows, size)


def _header_columns(
    names: Sequence[str], shape: Shape, nullable: dict[str, bool], key: str
) -> tuple[list[tabular.Column], list[str]]:
    """The staging columns the header names, in its order, and the ones not in the dataset."""
    most = limits.current().max_columns
    if len(names) > most:
        raise RowError(
            key,
            f"the header has {len(names)} columns; at most {most} are allowed"
            f" (LOADBAY_LOADER_MAX_COLUMNS; PostgreSQL tables take {limits.POSTGRES_MAX_COLUMNS})",
            line=1,
        )
    lowered = list(dict.fromkeys(n.lower() for n in names))  # repeats: copy_csv names them
    unprefixed = [
        n for n in lowered if n not in SYSTEM_COLUMNS and not n.startswith(DATASET_PREFIXES)
    ]
    if unprefixed:
        raise RowError(
            key,
            f"column {', '.join(repr(n) for n in unprefixed)} has no documented prefix"
            f" ({', '.join(DATASET_PREFIXES)}) and is not one of {', '.join(SYSTEM_COLUMNS)}",
            line=1,
            column=unprefixed[0] if len(unprefixed) == 1 else None,
        )
    missing = [c for c in shape.columns if c not in lowered]
    if missing:
        raise RowError(
            key,
            f"the header has no column {', '.join(repr(c) for c in missing)}, which the"
            " dataset declares",
            line=1,
            column=missing[0] if len(missing) == 1 else None,
        )
    extras = [n for n in lowered if n not in shape.types and n not in SYSTEM_COLUMNS]
    for name in extras:
        if not _NAME.match(name):
            raise RowError(key, f"column name {name!r} is not a plain identifier", line=1)
    columns = [
        tabular.Column(n, shape.types[n], nullable[n])
        if n in shape.types
        else tabular.Column(n, SYSTEM_COLUMNS.get(n, "text"))
        for n in lowered
    ]
    return columns, extras


async def _chain(head: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        yield head
        async for chunk in rest:
            yield chunk
    finally:
        await objects.aclose(rest)


async def _prepare(
    conn: asyncpg.Connection, request: LoadRequested, shape: Shape, staged: Staged
) -> None:
    """Sort the staged rows once into what the targets' modes read."""
    modes = {t.mode for t in request.targets}
    text = {name for name, type_ in shape.types.items() if type_ == "text"}
    if shape.keyed or ("inc" in modes and shape.key):
        staged.batch = f"{staged.table}_batch"
        await store.build_batch(
            conn,
            staged.table,
            staged.batch,
            shape.columns,
            shape.key,
            text_columns=text,
            deduplicate=True,
            routed=staged.routed,
        )
    if not shape.keyed and "full" in modes:
        staged.all_rows = f"{staged.table}_all"
        await store.build_batch(
            conn,
            staged.table,
            staged.all_rows,
            shape.columns,
            (),
            text_columns=text,
            deduplicate=False,
            routed=staged.routed,
        )


async def _route(
    conn: asyncpg.Connection, staged: Staged, request: LoadRequested
) -> tuple[dict[str, int], list[str]]:
    """Which targets have rows in the file, and which client ids match no target."""
    clients = sorted({t.client_id for t in request.targets})
    # Any table that holds every client id of the file will do; the sorted ones are indexed.
    table = staged.batch or staged.all_rows or staged.table
    counts = await store.client_row_counts(conn, table, clients)
    unknown, total = await store.unknown_client_ids(conn, table, clients, MAX_UNKNOWN_CLIENT_IDS)
    if total:
        log.warning(
            "load %s: %d x__client_id value(s) match no workspace (first: %s)",
            request.request_id,
            total,
            ", ".join(unknown[:10]),
        )
    if await store.rows_without_client_id(conn, table):
        log.warning("load %s: rows without an x__client_id go to no workspace", request.request_id)
    return counts, unknown


async def _load_workspace(
    conn: asyncpg.Connection,
    request: LoadRequested,
    shape: Shape,
    staged: Staged,
    counts: dict[str, int],
    target: WorkspaceTarget,
) -> WorkspaceLoadResult:
    schema, table = target.schema_name, request.dataset
    if staged.routed and not counts.get(target.client_id):
        # Nothing for this client in the file: leave its data as it is.
        WORKSPACE_LOADS.labels(target.mode, "untouched").inc()
        return WorkspaceLoadResult(workspace_id=target.workspace_id, status="succeeded")
    routed, client_id = staged.routed, target.client_id
    try:
        if _RESERVED_SCHEMA.match(schema):
            raise WorkspaceFailure(f"{schema}: schema name is reserved for the platform")
        async with conn.transaction():  # a savepoint: a failure undoes this workspace only
            await _ensure_table(conn, schema, table, shape)
            if target.mode == "full":
                source = staged.batch if shape.keyed else staged.all_rows
                assert source is not None  # _prepare built it for the full targets
                upserted, deleted = await store.rewrite(
                    conn, schema, table, shape.columns, source, routed=routed, client_id=client_id
                )
            elif staged.batch is None:
                raise WorkspaceFailure(
                    f"{schema}.{table}: an incremental load needs a connection point, a fact"
                    " table grain or attributes to match rows by, and the dataset has none"
                )
            else:
                upserted, deleted = await store.merge(
                    conn,
                    schema,
                    table,
                    shape.columns,
                    staged.batch,
                    shape.key,
                    by_key=shape.keyed,
                    routed=routed,
                    client_id=client_id,
                )
    except WorkspaceFailure as exc:
        WORKSPACE_LOADS.labels(target.mode, "failed").inc()
        return _failed(target, str(exc))
    except asyncpg.PostgresError as exc:
        if isinstance(exc, _CONNECTION_LOST):
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


async def _ensure_table(conn: asyncpg.Connection, schema: str, table: str, shape: Shape) -> None:
    columns = [store.StagingColumn(n, shape.types[n]) for n in shape.columns]
    existing = await store.table_columns(conn, schema, table)
    if not existing:
        await store.ensure_schema(conn, schema)
        await store.create_table(conn, schema, table, columns)
    else:
        wrong = [
            f"{c.name} is {existing[c.name]}, the dataset declares {store.SQL_TYPES[c.type]}"
            for c in columns
            if c.name in existing and existing[c.name] != store.SQL_TYPES[c.type]
        ]
        if wrong:
            raise WorkspaceFailure(f"{schema}.{table}: column " + "; column ".join(wrong))
        for column in columns:
            if column.name not in existing:  # the dataset gained a column
                await store.add_column(conn, schema, table, column)
    if shape.keyed:
        await store.ensure_unique_index(conn, schema, table, shape.key)


async def _record(
    conn: asyncpg.Connection,
    request: LoadRequested,
    completed: WorkspaceLoadCompleted,
    staged: Staged | None,
) -> None:
    failed = [r for r in completed.results if r.status == "failed"]
    await repository.record_load(
        conn,
        load_id=request.request_id,
        request_type=LoadRequested.TYPE,
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
    request: LoadRequested,
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
        " %d deleted, %.1fs",
        request.request_id,
        request.dataset,
        request.timestamp,
        len(request.keys),
        len(completed.results),
        failed,
        upserted,
        deleted,
        seconds,
    )


# --------------------------------------------------------------------------- reading files


def s3_opener(s3: Any, bucket: str) -> Opener:
    """Read objects of ``bucket`` with an aiobotocore client; an object that is gone, or
    that the loader may not read, is a :class:`SourceUnavailable`."""

    async def open_object(key: str) -> AsyncIterator[bytes]:
        try:
            async for chunk in objects.s3_chunks(s3, bucket, key):
                yield chunk
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "error"))
            gone = code in ("NoSuchKey", "404", "NotFound")
            raise SourceUnavailable(f"s3://{bucket}/{key}", code, gone=gone) from exc
        except BotoCoreError as exc:
            raise SourceUnavailable(f"s3://{bucket}/{key}", str(exc)) from exc

    return open_object


def file_kind(key: str) -> str:
    name = key.lower()
    if name.endswith((".parquet", ".parquet.gz")):
        return "parquet"
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(".gz"):
        return "gz"  # gzipped CSV
    return "csv" if name.endswith(".csv") else "unsupported"


@contextlib.asynccontextmanager
async def _csv_reader(
    open_object: Opener, key: str
) -> AsyncIterator[Callable[[], AsyncIterator[bytes]]]:
    """A callable that streams the file's CSV bytes, as often as asked (a failed COPY reads
    the file again to place the error). .zip and .parquet need random access: the object is
    spooled to a temporary file on disk once, never held in memory."""
    kind = file_kind(key)
    if kind == "csv":
        yield lambda: open_object(key)
    elif kind == "gz":
        yield lambda: _unpacked(key, decompressed(key, open_object(key)))
    elif kind in ("zip", "parquet"):
        with tempfile.TemporaryFile(prefix="loadbay-ws-") as spool:
            raw = open_object(key)
            if key.lower().endswith(".gz"):
                raw = _unpacked(key, decompressed(key, raw))
            await _spool(raw, spool)
            if kind == "zip":
                member = await asyncio.to_thread(_zip_member, spool, key)
                yield lambda: _threaded(key, _zip_chunks(spool, member, key))
            else:
                yield lambda: _threaded(key, _parquet_csv(spool, key))
    else:
        raise RowError(key, "unsupported file type: expected .csv, .gz, .zip or .parquet")


async def _spool(chunks: AsyncIterator[bytes], spool: IO[bytes]) -> None:
    async for chunk in objects.prefetch(chunks):
        await asyncio.to_thread(spool.write, chunk)
    await asyncio.to_thread(spool.flush)


async def _unpacked(key: str, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield chunk
    except (zlib.error, EOFError) as exc:
        raise RowError(key, f"not a valid gzip file: {exc}") from exc
    except UnreadableFile as exc:
        raise RowError(key, exc.reason) from exc


def _zip_member(spool: IO[bytes], key: str) -> str:
    try:
        with zipfile.ZipFile(spool) as archive:
            members = [
                i.filename
                for i in archive.infolist()
                if not i.is_dir() and not i.filename.startswith("__MACOSX/")
            ]
    except zipfile.BadZipFile as exc:
        raise RowError(key, f"not a valid zip archive: {exc}") from exc
    if len(members) != 1 or not members[0].lower().endswith(".csv"):
        raise RowError(
            key, f"a .zip must hold exactly one .csv file; it holds {', '.join(members) or 'none'}"
        )
    return members[0]


def _zip_chunks(spool: IO[bytes], member: str, key: str) -> Iterator[bytes]:
    guard = OutputGuard(key)  # a zip bomb fails like a gzip one
    with zipfile.ZipFile(spool) as archive, archive.open(member) as data:
        guard.took(archive.getinfo(member).compress_size)
        while chunk := data.read(SPOOL_CHUNK):
            guard.gave(len(chunk))
            yield chunk


def _parquet_csv(spool: IO[bytes], key: str) -> Iterator[bytes]:
    """The Parquet file as CSV (header first), one record batch at a time, in C++."""
    try:
        import pyarrow.csv as pa_csv
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise RowError(
            key,
            "Parquet files need the loader's parquet extra, which is not installed"
            " (pip install 'loadbay-loader[parquet]')",
        ) from exc
    spool.seek(0)
    parquet = pq.ParquetFile(spool)
    out = io.BytesIO()
    pa_csv.write_csv(parquet.schema_arrow.empty_table(), out)
    yield out.getvalue()
    options = pa_csv.WriteOptions(include_header=False)
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        out = io.BytesIO()
        pa_csv.write_csv(batch, out, options)
        yield out.getvalue()


async def _threaded(key: str, blocking: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Run a blocking reader in worker threads, one chunk at a time."""
    try:
        while True:
            chunk = await asyncio.to_thread(next, blocking, None)
            if chunk is None:
                return
            yield chunk
    except RowError:
        raise
    except UnreadableFile as exc:
        raise RowError(key, exc.reason) from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, ValueError, OSError) as exc:
        # zip: bad CRC, encryption; pyarrow: ArrowInvalid (a ValueError), ArrowIOError,
        # ArrowNotImplementedError (a NotImplementedError, so a RuntimeError).
        raise RowError(key, f"cannot read the file: {exc}") from exc
    finally:
        close = getattr(blocking, "close", None)
        if close is not None:
            await asyncio.to_thread(close)
