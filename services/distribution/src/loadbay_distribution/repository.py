"""All SQL of the distribution service. Functions take a connection and never commit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from loadbay_distribution.rows import (
    Dataset,
    LoadState,
    Product,
    Run,
    RunLoad,
    RunResult,
    Schedule,
    Workspace,
)
from loadbay_platform.rows import row_or_none, rows

# -- data products and their parts -------------------------------------------------------------

INSERT_PRODUCT = """
INSERT INTO data_products (id, name, bucket, prefix, owner_id, owner_email)
VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING RETURNING id
"""
PRODUCT_BY_NAME = "SELECT * FROM data_products WHERE name = $1"
PRODUCT_BY_ID = "SELECT * FROM data_products WHERE id = $1"
LOCK_PRODUCT = "SELECT * FROM data_products WHERE id = $1 FOR UPDATE"
LIST_PRODUCTS = "SELECT * FROM data_products WHERE owner_id = $1 ORDER BY name"
ALL_PRODUCTS = "SELECT * FROM data_products"
DELETE_PRODUCT = "DELETE FROM data_products WHERE id = $1"
INSERT_SEGMENT = """
INSERT INTO segments (data_product_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING name
"""
LIST_SEGMENTS = "SELECT name FROM segments WHERE data_product_id = $1 ORDER BY name"
INSERT_WORKSPACE = """
INSERT INTO workspaces (id, data_product_id, segment, client_id, schema_name)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING id
"""
LIST_WORKSPACES = """
SELECT w.*, coalesce(jsonb_object_agg(s.dataset, jsonb_build_object(
           'lsts', s.lsts, 'failure_streak', s.failure_streak,
           'last_failed_ts', s.last_failed_ts, 'last_error', s.last_error))
         FILTER (WHERE s.dataset IS NOT NULL), '{}') AS states
FROM workspaces w LEFT JOIN load_states s ON s.workspace_id = w.id
WHERE w.data_product_id = $1
GROUP BY w.id ORDER BY w.client_id
"""
DELETE_WORKSPACE = "DELETE FROM workspaces WHERE data_product_id = $1 AND client_id = $2"
WORKSPACE_EXISTS = "SELECT true FROM workspaces WHERE data_product_id = $1 AND client_id = $2"
UPSERT_DATASET = """
INSERT INTO datasets (data_product_id, name, segment, columns, grain)
VALUES ($1, $2, $3, $4::jsonb, $5) ON CONFLICT DO NOTHING RETURNING name
"""
LIST_DATASETS = "SELECT * FROM datasets WHERE data_product_id = $1 ORDER BY name"
DELETE_DATASET = "DELETE FROM datasets WHERE data_product_id = $1 AND name = $2"


async def insert_product(
    conn: asyncpg.Connection, *, id: str, name: str, bucket: str, prefix: str, owner_id: str,
    owner_email: str,
) -> bool:  # fmt: skip
    """Create a data product; False when one of that name exists already."""
    created = await conn.fetchval(INSERT_PRODUCT, id, name, bucket, prefix, owner_id, owner_email)
    return created is not None


async def product_by_name(conn: asyncpg.Connection, name: str) -> Product | None:
    return row_or_none(Product, await conn.fetchrow(PRODUCT_BY_NAME, name))


async def product_by_id(conn: asyncpg.Connection, product_id: str) -> Product | None:
    return row_or_none(Product, await conn.fetchrow(PRODUCT_BY_ID, product_id))


async def lock_product(conn: asyncpg.Connection, product_id: str) -> Product | None:
    return row_or_none(Product, await conn.fetchrow(LOCK_PRODUCT, product_id))


async def list_products(conn: asyncpg.Connection, owner_id: str) -> list[Product]:
    return rows(Product, await conn.fetch(LIST_PRODUCTS, owner_id))


async def all_products(conn: asyncpg.Connection) -> list[Product]:
    return rows(Product, await conn.fetch(ALL_PRODUCTS))


async def delete_product(conn: asyncpg.Connection, product_id: str) -> None:
    await conn.execute(DELETE_PRODUCT, product_id)


async def insert_segment(conn: asyncpg.Connection, product_id: str, name: str) -> bool:
    return await conn.fetchval(INSERT_SEGMENT, product_id, name) is not None


async def list_segments(conn: asyncpg.Connection, product_id: str) -> list[str]:
    return [r["name"] for r in await conn.fetch(LIST_SEGMENTS, product_id)]


async def insert_workspace(
    conn: asyncpg.Connection, workspace_id: str, product_id: str, segment: str, client_id: str,
    schema_name: str,
) -> bool:  # fmt: skip
    created = await conn.fetchval(
        INSERT_WORKSPACE, workspace_id, product_id, segment, client_id, schema_name
    )
    return created is not None


async def workspace_exists(conn: asyncpg.Connection, product_id: str, client_id: str) -> bool:
    return bool(await conn.fetchval(WORKSPACE_EXISTS, product_id, client_id))


async def list_workspaces(conn: asyncpg.Connection, product_id: str) -> list[Workspace]:
    return rows(Workspace, await conn.fetch(LIST_WORKSPACES, product_id))


async def delete_workspace(conn: asyncpg.Connection, product_id: str, client_id: str) -> bool:
    return str(await conn.execute(DELETE_WORKSPACE, product_id, client_id)) != "DELETE 0"


async def insert_dataset(
    conn: asyncpg.Connection, product_id: str, name: str, segment: str,
    columns: list[dict[str, str]], grain: Sequence[str],
) -> bool:  # fmt: skip
    created = await conn.fetchval(
        UPSERT_DATASET, product_id, name, segment, json.dumps(columns), list(grain)
    )
    return created is not None


async def list_datasets(conn: asyncpg.Connection, product_id: str) -> list[Dataset]:
    return rows(Dataset, await conn.fetch(LIST_DATASETS, product_id))


async def delete_dataset(conn: asyncpg.Connection, product_id: str, name: str) -> bool:
    return str(await conn.execute(DELETE_DATASET, product_id, name)) != "DELETE 0"


# -- load states -------------------------------------------------------------------------------

STATES = """
SELECT w.id AS workspace_id, w.client_id, w.schema_name, w.segment, w.created_at,
       s.lsts, coalesce(s.failure_streak, 0) AS failure_streak, s.last_failed_ts
FROM workspaces w
LEFT JOIN load_states s ON s.workspace_id = w.id AND s.dataset = $2
WHERE w.data_product_id = $1 AND w.segment = $3
ORDER BY w.client_id
"""
RECORD_SUCCESS = """
INSERT INTO load_states (workspace_id, dataset, lsts, failure_streak, updated_at)
VALUES ($1, $2, $3, 0, now())
ON CONFLICT (workspace_id, dataset) DO UPDATE
    SET lsts = excluded.lsts, failure_streak = 0, last_error = NULL, updated_at = now()
"""
RECORD_FAILURE = """
INSERT INTO load_states (workspace_id, dataset, failure_streak, last_failed_ts, last_error)
VALUES ($1, $2, 1, $3, $4)
ON CONFLICT (workspace_id, dataset) DO UPDATE
    SET failure_streak = load_states.failure_streak + CASE
            WHEN load_states.failure_streak = 0 OR load_states.last_failed_ts IS NULL
              OR excluded.last_failed_ts > load_states.last_failed_ts THEN 1 ELSE 0 END,
        last_failed_ts = CASE WHEN load_states.failure_streak = 0 THEN excluded.last_failed_ts
            ELSE greatest(load_states.last_failed_ts, excluded.last_failed_ts) END,
        last_error = excluded.last_error, updated_at = now()
RETURNING failure_streak
"""


async def states(
    conn: asyncpg.Connection, product_id: str, dataset: str, segment: str
) -> list[LoadState]:
    return rows(LoadState, await conn.fetch(STATES, product_id, dataset, segment))


async def record_successes(
    conn: asyncpg.Connection, workspace_ids: Sequence[str], dataset: str, timestamp: str
) -> None:
    """LSTS moves to ``timestamp`` for each workspace (one pipelined round trip)."""
    await conn.executemany(RECORD_SUCCESS, [(w, dataset, timestamp) for w in workspace_ids])


async def record_failure(
    conn: asyncpg.Connection, workspace_id: str, dataset: str, timestamp: str, reason: str
) -> int:
    return int(await conn.fetchval(RECORD_FAILURE, workspace_id, dataset, timestamp, reason))


# -- runs --------------------------------------------------------------------------------------

INSERT_RUN = """
INSERT INTO runs (id, data_product_id, status, trigger, triggered_by, plan, problems)
VALUES ($1, $2, 'running', $3, $4, $5::jsonb, $6)
"""
RUNNING_RUN = "SELECT id FROM runs WHERE data_product_id = $1 AND status = 'running'"
GET_RUN = "SELECT * FROM runs WHERE id = $1"
LOCK_RUN = "SELECT * FROM runs WHERE id = $1 FOR UPDATE"
LIST_RUNS = "SELECT * FROM runs WHERE data_product_id = $1 ORDER BY started_at DESC LIMIT $2"
ADD_PROBLEMS = "UPDATE runs SET problems = problems || $2::text[] WHERE id = $1"
FINISH_RUN = "UPDATE runs SET status = $2, finished_at = $3 WHERE id = $1"
INSERT_RUN_LOAD = """
INSERT INTO run_loads (request_id, run_id, dataset, timestamp, keys, targets)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)
"""
FINISH_RUN_LOAD = "UPDATE run_loads SET done = true WHERE request_id = $1 AND NOT done RETURNING *"
PENDING_RUN_LOADS = "SELECT count(*) FROM run_loads WHERE run_id = $1 AND NOT done"
INSERT_RESULT = """
INSERT INTO run_results (run_id, workspace_id, client_id, dataset, timestamp, file, mode, status,
                         rows_upserted, rows_deleted, reason)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT DO NOTHING
"""
RUN_RESULTS = "SELECT * FROM run_results WHERE run_id = $1 ORDER BY dataset, client_id, timestamp"


async def insert_run(
    conn: asyncpg.Connection, run_id: str, product_id: str, trigger: str, triggered_by: str,
    plan: dict[str, Any], problems: Sequence[str],
) -> None:  # fmt: skip
    await conn.execute(
        INSERT_RUN, run_id, product_id, trigger, triggered_by, json.dumps(plan), list(problems)
    )


async def running_run(conn: asyncpg.Connection, product_id: str) -> str | None:
    found: str | None = await conn.fetchval(RUNNING_RUN, product_id)
    return found


async def get_run(conn: asyncpg.Connection, run_id: str) -> Run | None:
    return row_or_none(Run, await conn.fetchrow(GET_RUN, run_id))


async def lock_run(conn: asyncpg.Connection, run_id: str) -> Run | None:
    return row_or_none(Run, await conn.fetchrow(LOCK_RUN, run_id))


async def list_runs(conn: asyncpg.Connection, product_id: str, limit: int) -> list[Run]:
    return rows(Run, await conn.fetch(LIST_RUNS, product_id, limit))


async def add_problems(conn: asyncpg.Connection, run_id: str, problems: Sequence[str]) -> None:
    await conn.execute(ADD_PROBLEMS, run_id, list(problems))


async def finish_run(
    conn: asyncpg.Connection, run_id: str, status: str, finished_at: datetime
) -> None:
    await conn.execute(FINISH_RUN, run_id, status, finished_at)


async def insert_run_load(
    conn: asyncpg.Connection, request_id: str, run_id: str, dataset: str, timestamp: str,
    keys: Sequence[str], targets: list[dict[str, str]],
) -> None:  # fmt: skip
    await conn.execute(
        INSERT_RUN_LOAD, request_id, run_id, dataset, timestamp, list(keys), json.dumps(targets)
    )


async def finish_run_load(conn: asyncpg.Connection, request_id: str) -> RunLoad | None:
    """Mark a load done; None if it was done already (a redelivered outcome)."""
    return row_or_none(RunLoad, await conn.fetchrow(FINISH_RUN_LOAD, request_id))


async def pending_run_loads(conn: asyncpg.Connection, run_id: str) -> int:
    return int(await conn.fetchval(PENDING_RUN_LOADS, run_id))


@dataclass(frozen=True)
class NewResult:
    """A workspace's outcome for one file of a run."""

    workspace_id: str
    client_id: str
    mode: str
    status: str
    rows_upserted: int
    rows_deleted: int
    reason: str | None


async def insert_results(
    conn: asyncpg.Connection,
    run_id: str,
    dataset: str,
    timestamp: str,
    file: str,
    results: Sequence[NewResult],
) -> None:
    """Outcomes for one file of a run (once: a redelivered outcome is a no-op), in one
    pipelined round trip."""
    await conn.executemany(
        INSERT_RESULT,
        [
            (run_id, r.workspace_id, r.client_id, dataset, timestamp, file, r.mode, r.status,
             r.rows_upserted, r.rows_deleted, r.reason)
            for r in results
        ],
    )  # fmt: skip


async def run_results(conn: asyncpg.Connection, run_id: str) -> list[RunResult]:
    return rows(RunResult, await conn.fetch(RUN_RESULTS, run_id))


# -- schedules ---------------------------------------------------------------------------------

UPSERT_SCHEDULE = """
INSERT INTO schedules (data_product_id, cron, next_run_at) VALUES ($1, $2, $3)
ON CONFLICT (data_product_id) DO UPDATE SET cron = excluded.cron, next_run_at = excluded.next_run_at
"""
DELETE_SCHEDULE = "DELETE FROM schedules WHERE data_product_id = $1"
GET_SCHEDULE = "SELECT * FROM schedules WHERE data_product_id = $1"
# Row locks make a due schedule fire once, whichever replica sees it first.
DUE_SCHEDULES = """
SELECT * FROM schedules WHERE next_run_at <= now() ORDER BY next_run_at
FOR UPDATE SKIP LOCKED LIMIT 10
"""
ADVANCE_SCHEDULE = "UPDATE schedules SET next_run_at = $2 WHERE data_product_id = $1"


async def upsert_schedule(
    conn: asyncpg.Connection, product_id: str, cron: str, next_run_at: datetime
) -> None:
    await conn.execute(UPSERT_SCHEDULE, product_id, cron, next_run_at)


async def delete_schedule(conn: asyncpg.Connection, product_id: str) -> None:
    await conn.execute(DELETE_SCHEDULE, product_id)


async def get_schedule(conn: asyncpg.Connection, product_id: str) -> Schedule | None:
    return row_or_none(Schedule, await conn.fetchrow(GET_SCHEDULE, product_id))


async def due_schedules(conn: asyncpg.Connection) -> list[Schedule]:
    return rows(Schedule, await conn.fetch(DUE_SCHEDULES))


async def advance_schedule(
    conn: asyncpg.Connection, product_id: str, next_run_at: datetime
) -> None:
    await conn.execute(ADVANCE_SCHEDULE, product_id, next_run_at)
