"""Reload loads: replace a dataset's rows with exactly the rows of the given files, atomically.

Each file streams from object storage into a typed staging table by COPY (PostgreSQL does the
typing and validation); only when every file loaded does the staging table replace the target,
in the same transaction as the ledger, inbox and outbox rows. Any bad value leaves the target
as it was and fails the load with the file, line, column and value.

The target is first claimed for the dataset in the loader's registry of warehouse tables: a
table that another dataset or a client workspace owns, or that exists without loadbay having
created it for this dataset, fails the load with that reason and is left as it is.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from botocore.exceptions import ClientError

from loadbay_contracts import FileRef, FileResult, LoadError, ReloadLoaded, ReloadRequested
from loadbay_loader import repository
from loadbay_loader.metrics import BYTES_LOADED, LOAD_SECONDS, LOADS, ROWS_LOADED
from loadbay_loader.streaming import objects
from loadbay_loader.warehouse import tabular
from loadbay_platform import outbox
from loadbay_platform.db import quote_ident
from loadbay_platform.outages import is_outage
from loadbay_platform.reasons import truncate
from loadbay_platform.s3 import ObjectStore
from loadbay_platform.warehouse import domain_problem

SERVICE = "loader"
log = logging.getLogger(__name__)


# Failures of the database rather than of this load: the event is retried, not failed.
_RETRYABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.TransactionRollbackError,
    asyncpg.InsufficientResourcesError,
    asyncpg.OperatorInterventionError,
    asyncpg.PostgresSystemError,
    asyncpg.InternalServerError,
)


class ReservedSchema(Exception):
    pass


class MissingSourceFile(Exception):
    def __init__(self, file: FileRef, detail: str) -> None:
        super().__init__(
            f"{file.name}: cannot read s3://{file.bucket}/{file.key} ({detail}); it may have"
            " been deleted from the landing zone"
        )
        self.file = file


async def run_reload(
    conn: asyncpg.Connection, s3: ObjectStore, request: ReloadRequested
) -> ReloadLoaded:
    """Carry out a reload inside the caller's transaction and emit its reload.loaded."""
    started = datetime.now(UTC)
    clock = time.perf_counter()
    spec = request.dataset
    columns = [tabular.Column(c.name, c.type, c.nullable) for c in spec.columns]
    options = tabular.CsvOptions(
        delimiter=spec.csv.delimiter, quote=spec.csv.quote, escape=spec.csv.escape
    )
    staging = f"_loadbay_stage_{uuid.uuid4().hex[:16]}"
    results: list[FileResult] = []
    error: LoadError | None = None
    # A dataset made before a name was reserved (say, a ws_ domain) never writes there.
    reserved = domain_problem(spec.warehouse_schema)
    try:
        if reserved is not None:
            raise ReservedSchema(reserved)
        async with conn.transaction():  # a savepoint: a failure undoes only the load
            await conn.execute(
                repository.ENSURE_SCHEMA.format(schema=quote_ident(spec.warehouse_schema))
            )
            await repository.claim_table(
                conn, spec.warehouse_schema, spec.table, kind="dataset", owner=spec.dataset_id
            )
            await tabular.create_staging_table(conn, spec.warehouse_schema, staging, columns)
            for file in request.files:
                copied = await tabular.copy_csv(
                    conn,
                    spec.warehouse_schema,
                    staging,
                    columns,
                    options,
                    objects.prefetch(_open(s3, file)),
                    file_name=file.name,
                    # After a failure the file is read again to find the line where the
                    # failing record starts (PostgreSQL reports where it ends).
                    reopen=functools.partial(_open, s3, file),
                )
                results.append(FileResult(key=file.key, rows=copied.rows, bytes=copied.bytes))
            if request.mode == "append":
                await tabular.append_from(conn, spec.warehouse_schema, spec.table, staging, columns)
            else:
                await tabular.swap_in(conn, spec.warehouse_schema, spec.table, staging)
            await repository.insert_dlz_publication(
                conn,
                request.execution_id,
                request.dlz_bucket,
                request.dlz_prefix,
                # skip-LZ files are in the DLZ already; appends keep every batch's files
                [
                    {"bucket": f.bucket, "key": f.key, "name": _dlz_name(f, request.mode)}
                    for f in request.files
                    if f.bucket != request.dlz_bucket
                ],
                replace=request.mode == "replace",
            )
    except tabular.RowError as exc:
        key = next((f.key for f in request.files if f.name == exc.file), exc.file)
        error = LoadError(
            file=key, line=exc.line, column=exc.column, value=exc.value, message=truncate(str(exc))
        )
    except MissingSourceFile as exc:
        error = LoadError(file=exc.file.key, message=truncate(str(exc)))
    except ReservedSchema as exc:
        error = LoadError(file="", message=f"nothing was loaded: {exc}")
    except asyncpg.PostgresError as exc:
        if isinstance(exc, _RETRYABLE):
            raise
        # The table rather than a file: not this dataset's (see the registry), a view in the
        # way, more columns than PostgreSQL allows... The load fails with the reason.
        message = getattr(exc, "message", None) or str(exc)
        hint = f" ({exc.hint})" if getattr(exc, "hint", None) else ""
        error = LoadError(file="", message=truncate(f"{message}{hint}"))
    status = "failed" if error else "succeeded"
    rows = sum(r.rows for r in results) if not error else 0
    size = sum(r.bytes for r in results) if not error else 0
    completed = ReloadLoaded(
        request_id=request.execution_id,
        dataset_id=spec.dataset_id,
        status=status,
        rows=rows,
        bytes=size,
        files=tuple(results) if not error else (),
        error=error,
        started_at=started,
        finished_at=datetime.now(UTC),
    )
    await repository.record_load(
        conn,
        load_id=request.execution_id,
        request_type=ReloadRequested.TYPE,
        dataset_id=spec.dataset_id,
        target=f"{spec.warehouse_schema}.{spec.table}",
        status=status,
        files=len(request.files),
        rows=rows,
        bytes_=size,
        error=error.model_dump() if error else None,
        started_at=started,
        finished_at=completed.finished_at,
    )
    await outbox.enqueue(conn, completed, service=SERVICE)
    LOADS.labels("reload", status).inc()
    LOAD_SECONDS.labels("reload").observe(time.perf_counter() - clock)
    if not error:
        ROWS_LOADED.labels(spec.file_type).inc(rows)
        BYTES_LOADED.labels(spec.file_type).inc(size)
    log.info(
        "reload %s of %s.%s %s: %d rows from %d files",
        request.execution_id,
        spec.warehouse_schema,
        spec.table,
        status,
        rows,
        len(request.files),
    )
    return completed


async def fail_unhandled(conn: asyncpg.Connection, request: ReloadRequested, reason: str) -> None:
    """The reload could not be carried out at all (its request was dead-lettered): say so, so
    that its execution fails with the reason instead of running for ever."""
    now = datetime.now(UTC)
    error = LoadError(
        file="", message=truncate(f"the loader could not carry out the reload: {reason}")
    )
    await outbox.enqueue(
        conn,
        ReloadLoaded(
            request_id=request.execution_id,
            dataset_id=request.dataset.dataset_id,
            status="failed",
            error=error,
            started_at=now,
            finished_at=now,
        ),
        service=SERVICE,
    )
    LOADS.labels("reload", "failed").inc()


def _dlz_name(file: FileRef, mode: str) -> str:
    """The file's key under the dataset's DLZ prefix: its name for a reload (the previous
    version is replaced), its batch path for an append (files of one name in two batches are
    two files)."""
    return file.key.split("/", 2)[2] if mode == "append" else file.name


async def _open(s3: ObjectStore, file: FileRef) -> Any:
    """The object's bytes, streamed; a missing or unreadable object is a load failure."""
    try:
        async for chunk in objects.s3_chunks(s3, file.bucket, file.key):
            yield chunk
    except ClientError as exc:
        if is_outage(exc):  # S3 struggling (5xx, SlowDown): waited out, not the file's fault
            raise
        code = exc.response.get("Error", {}).get("Code", "error")
        raise MissingSourceFile(file, str(code)) from exc
