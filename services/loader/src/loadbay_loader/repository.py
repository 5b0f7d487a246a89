"""All SQL of the loader's own schema (the warehouse DDL lives in tabular.py)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

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
