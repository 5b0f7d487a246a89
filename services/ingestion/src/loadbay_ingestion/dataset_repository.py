"""SQL of the datasets ingestion knows from the reload service's events (datasets.py).
Functions take a connection and never commit."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from loadbay_ingestion.rows import Dataset
from loadbay_platform.rows import row_or_none

UPSERT_DATASET = """
INSERT INTO datasets (dataset_id, domain, name, dataset_type, file_type, owner_id, owner_email,
                      authorized_users)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (dataset_id) DO UPDATE
    SET dataset_type = excluded.dataset_type, file_type = excluded.file_type,
        owner_id = excluded.owner_id, owner_email = excluded.owner_email,
        authorized_users = excluded.authorized_users, seen_at = now()
    WHERE datasets.deleted_at IS NULL
"""
# A deletion seen before its creation (other partition, replay) leaves a tombstone.
DELETE_DATASET = """
INSERT INTO datasets (dataset_id, domain, name, dataset_type, file_type, owner_id, owner_email,
                      deleted_at)
VALUES ($1, $2, $3, 'reload', '', '', '', now())
ON CONFLICT (dataset_id) DO UPDATE SET deleted_at = coalesce(datasets.deleted_at, now())
"""
LIVE_DATASET = """
SELECT * FROM datasets WHERE domain = $1 AND name = $2 AND deleted_at IS NULL
ORDER BY seen_at DESC LIMIT 1
"""
DATASET_BY_ID = "SELECT * FROM datasets WHERE dataset_id = $1"


async def upsert_dataset(
    conn: asyncpg.Connection,
    *,
    dataset_id: str,
    domain: str,
    name: str,
    dataset_type: str,
    file_type: str,
    owner_id: str,
    owner_email: str,
    authorized_users: Sequence[str],
) -> None:
    await conn.execute(
        UPSERT_DATASET,
        dataset_id,
        domain,
        name,
        dataset_type,
        file_type,
        owner_id,
        owner_email,
        list(authorized_users),
    )


async def delete_dataset(conn: asyncpg.Connection, dataset_id: str, domain: str, name: str) -> None:
    await conn.execute(DELETE_DATASET, dataset_id, domain, name)


async def live_dataset(conn: asyncpg.Connection, domain: str, name: str) -> Dataset | None:
    return row_or_none(Dataset, await conn.fetchrow(LIVE_DATASET, domain, name))


async def dataset_by_id(conn: asyncpg.Connection, dataset_id: str) -> Dataset | None:
    return row_or_none(Dataset, await conn.fetchrow(DATASET_BY_ID, dataset_id))
