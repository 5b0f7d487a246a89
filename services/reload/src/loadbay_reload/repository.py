"""All SQL of the reload service. Functions take a connection and never commit: the caller
owns the transaction (so effects, outbox rows and inbox rows commit together)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
from asyncpg import Record

from loadbay_platform.rows import row_or_none, rows
from loadbay_reload.rows import Execution, LandedFile

# -- datasets ----------------------------------------------------------------------------------

INSERT_DATASET = """
INSERT INTO datasets (id, domain, name, file_type, columns, csv_options, description,
                      owner_id, owner_email, dataset_type)
VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8, $9, $10)
ON CONFLICT (domain, name) DO NOTHING
RETURNING id
"""
INSERT_DATASET_USER = """
INSERT INTO dataset_users (dataset_id, user_id, email) VALUES ($1, $2, $3)
ON CONFLICT (dataset_id, user_id) DO UPDATE SET email = excluded.email
"""
DATASET_COLUMNS = """
SELECT d.*, coalesce(
    (SELECT jsonb_agg(jsonb_build_object('user_id', u.user_id, 'email', u.email)
                      ORDER BY u.user_id)
       FROM dataset_users u WHERE u.dataset_id = d.id), '[]'::jsonb) AS authorized_users
FROM datasets d
"""
GET_DATASET_BY_NAME = DATASET_COLUMNS + " WHERE d.domain = $1 AND d.name = $2"
LOCK_DATASET = DATASET_COLUMNS + " WHERE d.id = $1 FOR UPDATE OF d"
LIST_DATASETS_FOR_USER = (
    DATASET_COLUMNS
    + """ WHERE d.owner_id = $1
       OR EXISTS (SELECT 1 FROM dataset_users u WHERE u.dataset_id = d.id AND u.user_id = $1)
    ORDER BY d.domain, d.name"""
)
DELETE_DATASET = "DELETE FROM datasets WHERE id = $1"


async def insert_dataset(
    conn: asyncpg.Connection,
    *,
    dataset_id: str,
    domain: str,
    name: str,
    file_type: str,
    columns: list[dict[str, Any]],
    csv_options: dict[str, Any],
    description: str,
    owner_id: str,
    owner_email: str,
    authorized_users: Sequence[tuple[str, str]],
    dataset_type: str = "reload",
) -> bool:
    """Insert a dataset; False when (domain, name) is taken."""
    created = await conn.fetchval(
        INSERT_DATASET,
        dataset_id,
        domain,
        name,
        file_type,
        json.dumps(columns),
        json.dumps(csv_options),
        description,
        owner_id,
        owner_email,
        dataset_type,
    )
    if created is None:
        return False
    await conn.executemany(
        INSERT_DATASET_USER, [(dataset_id, uid, email) for uid, email in authorized_users]
    )
    return True


async def get_dataset_by_name(conn: asyncpg.Connection, domain: str, name: str) -> Record | None:
    return await conn.fetchrow(GET_DATASET_BY_NAME, domain, name)


async def lock_dataset(conn: asyncpg.Connection, dataset_id: str) -> Record | None:
    """Fetch a dataset and lock it until the transaction ends (serialises reload starts)."""
    return await conn.fetchrow(LOCK_DATASET, dataset_id)


async def list_datasets_for_user(conn: asyncpg.Connection, user_id: str) -> list[Record]:
    return await conn.fetch(LIST_DATASETS_FOR_USER, user_id)


async def delete_dataset(conn: asyncpg.Connection, dataset_id: str) -> None:
    await conn.execute(DELETE_DATASET, dataset_id)


# -- files -------------------------------------------------------------------------------------

UPSERT_LANDED_FILE = """
INSERT INTO files (dataset_id, bucket, key, name, batch, etag, size, landed_by, landing_source,
                   status)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending')
ON CONFLICT (bucket, key) DO UPDATE
   SET etag = excluded.etag, size = excluded.size, status = 'pending', error = NULL,
       landing_source = excluded.landing_source, updated_at = now()
 WHERE files.etag <> excluded.etag AND files.status <> 'processing'
RETURNING id
"""
FILE_COLUMNS = """
SELECT id, dataset_id, bucket, key, name, batch, etag, size, landed_by, landing_source, status,
       error, execution_id, landed_at, updated_at
FROM files
"""
LIST_FILES = (
    FILE_COLUMNS + " WHERE dataset_id = $1 AND ($2::text IS NULL OR status = $2) ORDER BY id"
)
FILE_BY_KEY = FILE_COLUMNS + " WHERE bucket = $1 AND key = $2"
FILES_BY_IDS = FILE_COLUMNS + " WHERE dataset_id = $1 AND id = ANY($2::bigint[]) ORDER BY id"
PENDING_IN_BATCH = (
    FILE_COLUMNS + " WHERE dataset_id = $1 AND batch = $2 AND status = 'pending' ORDER BY key"
)
KEYS_IN_BATCH = "SELECT key FROM files WHERE dataset_id = $1 AND batch = $2"
MARK_PROCESSING = """
UPDATE files SET status = 'processing', execution_id = $2, error = NULL, updated_at = now()
WHERE id = ANY($1::bigint[])
"""
MARK_COMPLETED = """
UPDATE files SET status = 'completed', error = NULL, updated_at = now()
WHERE execution_id = $1 AND status = 'processing'
"""
MARK_FAILED_BACK_TO_PENDING = """
UPDATE files
   SET status = 'pending', updated_at = now(),
       error = CASE WHEN key = $2 THEN $3 ELSE $4 END
WHERE execution_id = $1 AND status = 'processing'
"""
DELETE_FILES = "DELETE FROM files WHERE id = ANY($1::bigint[])"


async def upsert_landed_file(
    conn: asyncpg.Connection,
    *,
    dataset_id: str,
    bucket: str,
    key: str,
    name: str,
    batch: str,
    etag: str,
    size: int,
    landed_by: str,
    landing_source: str,
) -> int | None:
    """Register a landed object as pending. None when this object version is known already."""
    file_id: int | None = await conn.fetchval(
        UPSERT_LANDED_FILE,
        dataset_id,
        bucket,
        key,
        name,
        batch,
        etag,
        size,
        landed_by,
        landing_source,
    )
    return file_id


async def list_files(
    conn: asyncpg.Connection, dataset_id: str, status: str | None = None
) -> list[LandedFile]:
    return rows(LandedFile, await conn.fetch(LIST_FILES, dataset_id, status))


async def file_by_key(conn: asyncpg.Connection, bucket: str, key: str) -> LandedFile | None:
    return row_or_none(LandedFile, await conn.fetchrow(FILE_BY_KEY, bucket, key))


async def files_by_ids(
    conn: asyncpg.Connection, dataset_id: str, file_ids: Sequence[int]
) -> list[LandedFile]:
    return rows(LandedFile, await conn.fetch(FILES_BY_IDS, dataset_id, list(file_ids)))


async def pending_files_in_batch(
    conn: asyncpg.Connection, dataset_id: str, batch: str
) -> list[LandedFile]:
    return rows(LandedFile, await conn.fetch(PENDING_IN_BATCH, dataset_id, batch))


async def keys_in_batch(conn: asyncpg.Connection, dataset_id: str, batch: str) -> set[str]:
    return {r["key"] for r in await conn.fetch(KEYS_IN_BATCH, dataset_id, batch)}


async def mark_processing(
    conn: asyncpg.Connection, file_ids: Sequence[int], execution_id: str
) -> None:
    await conn.execute(MARK_PROCESSING, list(file_ids), execution_id)


async def mark_completed(conn: asyncpg.Connection, execution_id: str) -> None:
    await conn.execute(MARK_COMPLETED, execution_id)


async def return_to_pending(
    conn: asyncpg.Connection,
    execution_id: str,
    *,
    failed_key: str | None,
    file_error: str,
    others_error: str,
) -> None:
    await conn.execute(
        MARK_FAILED_BACK_TO_PENDING, execution_id, failed_key, file_error, others_error
    )


async def delete_files(conn: asyncpg.Connection, file_ids: Sequence[int]) -> None:
    await conn.execute(DELETE_FILES, list(file_ids))


# -- executions --------------------------------------------------------------------------------

INSERT_EXECUTION = """
INSERT INTO executions (id, dataset_id, status, trigger, triggered_by, triggered_by_email, batch,
                        file_count)
VALUES ($1, $2, 'running', $3, $4, $5, $6, $7)
"""
INSERT_EXECUTION_FILES = """
INSERT INTO execution_files (execution_id, file_id, key)
SELECT $1, f.id, f.key FROM files f WHERE f.id = ANY($2::bigint[])
"""
RUNNING_EXECUTION = "SELECT id FROM executions WHERE dataset_id = $1 AND status = 'running'"
RECORD_REJECTED_MARKER = """
INSERT INTO rejected_markers (execution_id, key, etag) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING RETURNING true
"""
EXECUTION_COLUMNS = """
SELECT e.*, d.domain, d.name AS dataset_name,
       coalesce((SELECT array_agg(ef.key ORDER BY ef.key) FROM execution_files ef
                  WHERE ef.execution_id = e.id), '{}') AS files
FROM executions e JOIN datasets d ON d.id = e.dataset_id
"""
GET_EXECUTION = EXECUTION_COLUMNS + " WHERE e.id = $1"
LOCK_EXECUTION = EXECUTION_COLUMNS + " WHERE e.id = $1 FOR UPDATE OF e"
LIST_EXECUTIONS = EXECUTION_COLUMNS + " WHERE e.dataset_id = $1 ORDER BY e.started_at DESC LIMIT $2"
FINISH_EXECUTION = """
UPDATE executions
   SET status = $2, reason = $3, error = $4::jsonb, rows = $5, bytes = $6, finished_at = $7
WHERE id = $1
"""


async def running_execution_id(conn: asyncpg.Connection, dataset_id: str) -> str | None:
    found: str | None = await conn.fetchval(RUNNING_EXECUTION, dataset_id)
    return found


async def record_rejected_marker(
    conn: asyncpg.Connection, execution_id: str, key: str, etag: str
) -> bool:
    """Remember that this marker was turned away during `execution_id`; False if it was
    already (a repeated announcement of the same object)."""
    return bool(await conn.fetchval(RECORD_REJECTED_MARKER, execution_id, key, etag))


async def insert_execution(
    conn: asyncpg.Connection,
    *,
    execution_id: str,
    dataset_id: str,
    trigger: str,
    triggered_by: str,
    triggered_by_email: str,
    batch: str | None,
    file_ids: Sequence[int],
) -> None:
    await conn.execute(
        INSERT_EXECUTION,
        execution_id,
        dataset_id,
        trigger,
        triggered_by,
        triggered_by_email,
        batch,
        len(file_ids),
    )
    await conn.execute(INSERT_EXECUTION_FILES, execution_id, list(file_ids))


async def get_execution(conn: asyncpg.Connection, execution_id: str) -> Execution | None:
    return row_or_none(Execution, await conn.fetchrow(GET_EXECUTION, execution_id))


async def lock_execution(conn: asyncpg.Connection, execution_id: str) -> Execution | None:
    return row_or_none(Execution, await conn.fetchrow(LOCK_EXECUTION, execution_id))


async def list_executions(
    conn: asyncpg.Connection, dataset_id: str, limit: int = 100
) -> list[Execution]:
    return rows(Execution, await conn.fetch(LIST_EXECUTIONS, dataset_id, limit))


async def finish_execution(
    conn: asyncpg.Connection,
    execution_id: str,
    *,
    status: str,
    reason: str | None,
    error: dict[str, Any] | None,
    rows: int,
    bytes_: int,
    finished_at: datetime,
) -> None:
    await conn.execute(
        FINISH_EXECUTION,
        execution_id,
        status,
        reason,
        json.dumps(error) if error is not None else None,
        rows,
        bytes_,
        finished_at,
    )


# -- bucket watcher ----------------------------------------------------------------------------

KNOWN_OBJECTS = "SELECT key, etag FROM watched_objects WHERE bucket = $1"
REMEMBER_OBJECT = """
INSERT INTO watched_objects (bucket, key, etag) VALUES ($1, $2, $3)
ON CONFLICT (bucket, key) DO UPDATE SET etag = excluded.etag, seen_at = now()
"""


async def known_objects(conn: asyncpg.Connection, bucket: str) -> dict[str, str]:
    return {r["key"]: r["etag"] for r in await conn.fetch(KNOWN_OBJECTS, bucket)}


async def remember_object(conn: asyncpg.Connection, bucket: str, key: str, etag: str) -> None:
    await conn.execute(REMEMBER_OBJECT, bucket, key, etag)
