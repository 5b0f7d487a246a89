"""All SQL of the loader's own schema (the warehouse DDL lives in warehouse/tabular.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg

INSERT_LOAD = """
INSERT INTO loads (id, request_type, dataset_id, target, status, files, rows, bytes, error,
                   started_at, finished_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11)
ON CONFLICT (id) DO NOTHING
"""
ENSURE_SCHEMA = "CREATE SCHEMA IF NOT EXISTS {schema}"
LIST_LOADS = "SELECT * FROM loads ORDER BY started_at DESC LIMIT $1"


async def record_load(
    conn: asyncpg.Connection,
    *,
    load_id: str,
    request_type: str,
    dataset_id: str,
    target: str,
    status: str,
    files: int,
    rows: int,
    bytes_: int,
    error: dict[str, Any] | None,
    started_at: datetime,
    finished_at: datetime,
) -> None:
    await conn.execute(
        INSERT_LOAD,
        load_id,
        request_type,
        dataset_id,
        target,
        status,
        files,
        rows,
        bytes_,
        json.dumps(error) if error else None,
        started_at,
        finished_at,
    )


async def list_loads(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_LOADS, limit)


# -- warehouse tables and their owners (see migrations/0009_warehouse_tables.sql) -------------

CLAIM_TABLE = "SELECT claim_warehouse_table($1, $2, $3, $4, $5)"
RELEASE_DATASET_TABLES = """
UPDATE warehouse_tables SET owner_id = NULL WHERE owner_kind = 'dataset' AND owner_id = $1
"""
TABLE_OWNER = """
SELECT owner_kind, owner_id FROM warehouse_tables WHERE schema_name = $1 AND table_name = $2
"""


async def claim_table(
    conn: asyncpg.Connection,
    schema: str,
    table: str,
    *,
    kind: str,
    owner: str,
    adopt_unregistered: bool = False,
) -> str:
    """Claim ``schema.table`` for an owner before writing it: 'owned', 'registered' or
    'adopted'; raises ``asyncpg.InsufficientPrivilegeError`` (with a message for a person) if
    the table is another's or exists without loadbay having created it for this owner."""
    return str(await conn.fetchval(CLAIM_TABLE, schema, table, kind, owner, adopt_unregistered))


class TableClaim(NamedTuple):
    """`claim_table`'s arguments, for `claim_tables`."""

    schema: str
    table: str
    kind: str
    owner: str
    adopt_unregistered: bool


async def claim_tables(conn: asyncpg.Connection, claims: Sequence[TableClaim]) -> None:
    """`claim_table` for many tables, pipelined in one round trip; raises as it does, for the
    first table that cannot be claimed."""
    await conn.executemany(CLAIM_TABLE, claims)


async def release_dataset_tables(conn: asyncpg.Connection, dataset_id: str) -> None:
    """The dataset is gone: its tables stay, and the next dataset loading into one adopts it."""
    await conn.execute(RELEASE_DATASET_TABLES, dataset_id)


async def table_owner(conn: asyncpg.Connection, schema: str, table: str) -> asyncpg.Record | None:
    return await conn.fetchrow(TABLE_OWNER, schema, table)


INSERT_DLZ_PUBLICATION = """
INSERT INTO dlz_publications (load_id, dlz_bucket, dlz_prefix, files, replace)
VALUES ($1, $2, $3, $4::jsonb, $5)
"""
NOTIFY_DLZ = "SELECT pg_notify('loadbay_loader_dlz', '')"
# One publisher at a time, oldest first: a later reload's copy must land last.
NEXT_DLZ_PUBLICATION = """
SELECT id, load_id, dlz_bucket, dlz_prefix, files::text AS files, replace FROM dlz_publications
ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
"""
TRY_DLZ_LOCK = "SELECT pg_try_advisory_xact_lock(hashtext('loadbay_loader_dlz'))"
DELETE_DLZ_PUBLICATION = "DELETE FROM dlz_publications WHERE id = $1"
FAIL_DLZ_PUBLICATION = """
UPDATE dlz_publications SET attempts = attempts + 1, last_error = $2 WHERE id = $1
"""
DLZ_BACKLOG = "SELECT count(*) FROM dlz_publications"


async def insert_dlz_publication(
    conn: asyncpg.Connection,
    load_id: str,
    dlz_bucket: str,
    dlz_prefix: str,
    files: list[dict[str, str]],
    *,
    replace: bool = True,
) -> None:
    await conn.execute(
        INSERT_DLZ_PUBLICATION, load_id, dlz_bucket, dlz_prefix, json.dumps(files), replace
    )
    await conn.execute(NOTIFY_DLZ)


async def try_lock_dlz(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval(TRY_DLZ_LOCK))


async def next_dlz_publication(conn: asyncpg.Connection) -> asyncpg.Record | None:
    return await conn.fetchrow(NEXT_DLZ_PUBLICATION)


async def delete_dlz_publication(conn: asyncpg.Connection, publication_id: int) -> None:
    await conn.execute(DELETE_DLZ_PUBLICATION, publication_id)


async def fail_dlz_publication(conn: asyncpg.Connection, publication_id: int, error: str) -> None:
    await conn.execute(FAIL_DLZ_PUBLICATION, publication_id, error)


async def dlz_backlog(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval(DLZ_BACKLOG))
