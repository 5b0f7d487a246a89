"""All SQL of the bulk-loader jobs (graph_loads and friends). Functions take a connection and
never commit; the caller owns the transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence

import asyncpg

from loadbay_loader.graph.feeds import FeedCounts
from loadbay_loader.graph.request import LoadRequest
from loadbay_loader.graph.rows import (
    CrashLooping,
    Feed,
    GraphLoad,
    LoadError,
    Requester,
)
from loadbay_loader.graph.storable import storable
from loadbay_platform.rows import row_or_none, rows

HISTORY_LIMIT = 1024  # Neptune keeps the latest 1,024 loads
ERRORS_PER_LOAD = 10_000  # and the last 10,000 errors of each

CHANNEL = "loadbay_loader_jobs"
RUNNER_LOCK = 0x6C6F6164  # one running load per graph, whichever replica runs it
ACTIVE = ("LOAD_NOT_STARTED", "LOAD_IN_QUEUE", "LOAD_IN_PROGRESS")
WAITING = ("LOAD_NOT_STARTED", "LOAD_IN_QUEUE")

INSERT_LOAD = """
INSERT INTO graph_loads (id, source, bucket, prefix, format, mode, fail_on_error, parallelism,
    parser_configuration, update_single_cardinality, user_provided_edge_ids, queue_request,
    edge_only_load, dependencies, region, iam_role_arn, requested_by, status, requested_by_email)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12, $13, $14, $15, $16, $17, $18,
        $19)
"""
PRUNE_HISTORY = """
DELETE FROM graph_loads WHERE status <> ALL($2::text[]) AND id IN (
    SELECT id FROM graph_loads ORDER BY seq DESC OFFSET $1)
"""
LOCK_QUEUE = "LOCK TABLE graph_loads IN SHARE ROW EXCLUSIVE MODE"
COUNT_BY_STATUS = (
    "SELECT status, count(*) AS n FROM graph_loads WHERE status = ANY($1::text[]) GROUP BY status"
)
GET_LOAD = "SELECT * FROM graph_loads WHERE id = $1"
GET_REQUESTER = "SELECT requested_by FROM graph_loads WHERE id = $1"
LOADS_BY_IDS = "SELECT id, status FROM graph_loads WHERE id = ANY($1::text[])"
LIST_IDS = """
SELECT id FROM graph_loads
WHERE ($2 OR status <> 'LOAD_IN_QUEUE') AND ($3::text IS NULL OR requested_by = $3)
ORDER BY (status = 'LOAD_IN_QUEUE') DESC, seq DESC
LIMIT $1
"""
WAITING_LOADS = "SELECT * FROM graph_loads WHERE status = ANY($1::text[]) ORDER BY seq"
SET_STATUS = """
UPDATE graph_loads SET status = $2,
    finished_at = CASE WHEN $3 THEN now() ELSE finished_at END
WHERE id = $1
"""
START_LOAD = """
UPDATE graph_loads SET status = 'LOAD_IN_PROGRESS', start_time = coalesce(start_time, now())
WHERE id = $1
"""
REQUEST_CANCEL = """
UPDATE graph_loads SET cancel_requested = true WHERE id = $1 AND status = ANY($2::text[])
RETURNING status
"""
IS_CANCEL_REQUESTED = "SELECT cancel_requested FROM graph_loads WHERE id = $1"
RECOVER_INTERRUPTED = """
UPDATE graph_loads SET status = 'LOAD_IN_QUEUE', run_number = run_number + 1
WHERE status = 'LOAD_IN_PROGRESS' AND run_number < $1 RETURNING id
"""
CRASH_LOOPING = """
SELECT l.id, l.run_number, (
    SELECT f.uri FROM graph_load_feeds f
    WHERE f.load_id = l.id AND f.status = 'LOAD_IN_PROGRESS' ORDER BY f.position LIMIT 1
) AS uri
FROM graph_loads l WHERE l.status = 'LOAD_IN_PROGRESS' AND l.run_number >= $1
"""
FAIL_INTERRUPTED_FEEDS = """
UPDATE graph_load_feeds SET status = 'LOAD_FAILED'
WHERE load_id = $1 AND status = 'LOAD_IN_PROGRESS'
"""
RESET_INTERRUPTED_FEEDS = """
UPDATE graph_load_feeds SET status = 'LOAD_NOT_STARTED'
WHERE load_id = ANY($1::text[]) AND status = 'LOAD_IN_PROGRESS'
"""
ADD_TOTALS = """
UPDATE graph_loads SET
    total_time_spent = total_time_spent + $2, total_records = total_records + $3,
    total_duplicates = total_duplicates + $4, parsing_errors = parsing_errors + $5,
    datatype_mismatch_errors = datatype_mismatch_errors + $6, insert_errors = insert_errors + $7
WHERE id = $1
"""
INSERT_FEEDS = """
INSERT INTO graph_load_feeds (load_id, uri, kind, position, status)
SELECT $1, u.uri, u.kind, u.position, 'LOAD_NOT_STARTED'
FROM unnest($2::text[], $3::text[], $4::int[]) AS u(uri, kind, position)
ON CONFLICT (load_id, uri) DO NOTHING
"""
FEEDS = "SELECT * FROM graph_load_feeds WHERE load_id = $1 ORDER BY position"
START_FEED = """
UPDATE graph_load_feeds SET status = 'LOAD_IN_PROGRESS', start_time = now()
WHERE load_id = $1 AND uri = $2
"""
FINISH_FEED = """
UPDATE graph_load_feeds SET status = $3, total_time_spent = $4, total_records = $5,
    total_duplicates = $6, parsing_errors = $7, datatype_mismatch_errors = $8, insert_errors = $9
WHERE load_id = $1 AND uri = $2
"""
FEED_STATUS_COUNTS = (
    "SELECT status, count(*) AS n FROM graph_load_feeds WHERE load_id = $1 GROUP BY status"
    " ORDER BY status"
)
ADD_ERROR = """
WITH slot AS (
    UPDATE graph_loads SET error_count = error_count + 1 WHERE id = $1 RETURNING error_count
)
INSERT INTO graph_load_errors (load_id, idx, error_code, error_message, file_name, record_num)
SELECT $1, slot.error_count, $2, $3, $4, $5 FROM slot WHERE slot.error_count <= $6
"""
ERRORS_PAGE = """
SELECT idx, error_code, error_message, file_name, record_num FROM graph_load_errors
WHERE load_id = $1 ORDER BY idx OFFSET $2 LIMIT $3
"""
COUNT_ERRORS = "SELECT count(*) FROM graph_load_errors WHERE load_id = $1"
COUNT_MORE_ERRORS = "UPDATE graph_loads SET error_count = error_count + $2 WHERE id = $1"
LOADED_FILES = "SELECT uri, etag FROM graph_source_files WHERE source = $1"
REMEMBER_FILE = """
INSERT INTO graph_source_files (source, uri, etag, load_id) VALUES ($1, $2, $3, $4)
ON CONFLICT (source, uri) DO UPDATE
    SET etag = excluded.etag, load_id = excluded.load_id, loaded_at = now()
"""
HAS_PREVIOUS_LOAD = "SELECT EXISTS (SELECT 1 FROM graph_loads WHERE source = $1 AND id <> $2)"


async def insert_load(
    conn: asyncpg.Connection,
    load_id: str,
    request: LoadRequest,
    *,
    status: str,
    requested_by: str | None,
    requested_by_email: str | None,
) -> None:
    """Admit a load with the request's fields; keep only the newest HISTORY_LIMIT loads."""
    await conn.execute(
        INSERT_LOAD,
        load_id, request.source, request.bucket, request.prefix, request.format, request.mode,
        request.fail_on_error, request.parallelism, json.dumps(request.parser_configuration),
        request.update_single_cardinality_properties, request.user_provided_edge_ids,
        request.queue_request, request.edge_only_load, list(request.dependencies),
        request.region, request.iam_role_arn, requested_by, status, requested_by_email,
    )  # fmt: skip
    await conn.execute(PRUNE_HISTORY, HISTORY_LIMIT, list(ACTIVE))


async def lock_queue(conn: asyncpg.Connection) -> None:
    """Serialise admissions, so two requests cannot both take the last queue slot."""
    await conn.execute(LOCK_QUEUE)


async def count_by_status(conn: asyncpg.Connection, statuses: Sequence[str]) -> dict[str, int]:
    return {r["status"]: r["n"] for r in await conn.fetch(COUNT_BY_STATUS, list(statuses))}


async def get_load(conn: asyncpg.Connection, load_id: str) -> GraphLoad | None:
    return row_or_none(GraphLoad, await conn.fetchrow(GET_LOAD, load_id))


async def statuses_of(conn: asyncpg.Connection, load_ids: Sequence[str]) -> dict[str, str]:
    return {r["id"]: r["status"] for r in await conn.fetch(LOADS_BY_IDS, list(load_ids))}


async def get_requester(conn: asyncpg.Connection, load_id: str) -> Requester | None:
    """Who started a load; None if there is no such load."""
    return row_or_none(Requester, await conn.fetchrow(GET_REQUESTER, load_id))


async def list_load_ids(
    conn: asyncpg.Connection, limit: int, include_queued: bool, requested_by: str | None
) -> list[str]:
    """Newest first; only the loads `requested_by` started, unless it is None."""
    return [r["id"] for r in await conn.fetch(LIST_IDS, limit, include_queued, requested_by)]


async def waiting_loads(conn: asyncpg.Connection) -> list[GraphLoad]:
    return rows(GraphLoad, await conn.fetch(WAITING_LOADS, list(WAITING)))


async def set_status(
    conn: asyncpg.Connection, load_id: str, status: str, *, terminal: bool
) -> None:
    await conn.execute(SET_STATUS, load_id, status, terminal)


async def start_load(conn: asyncpg.Connection, load_id: str) -> None:
    await conn.execute(START_LOAD, load_id)


async def request_cancel(conn: asyncpg.Connection, load_id: str) -> str | None:
    """Flag an active load for cancellation; its status, or None if it is not active."""
    status: str | None = await conn.fetchval(REQUEST_CANCEL, load_id, list(ACTIVE))
    return status


async def is_cancel_requested(conn: asyncpg.Connection, load_id: str) -> bool:
    return bool(await conn.fetchval(IS_CANCEL_REQUESTED, load_id))


async def recover_interrupted(conn: asyncpg.Connection, max_runs: int) -> list[str]:
    """Loads that were running when the process died go back to the queue (runNumber + 1),
    unless they have had `max_runs` runs already (see :func:`crash_looping`)."""
    ids = [r["id"] for r in await conn.fetch(RECOVER_INTERRUPTED, max_runs)]
    if ids:
        await conn.execute(RESET_INTERRUPTED_FEEDS, ids)
    return ids


async def crash_looping(conn: asyncpg.Connection, max_runs: int) -> list[CrashLooping]:
    """Loads left running by a dead process for the `max_runs`-th time."""
    return rows(CrashLooping, await conn.fetch(CRASH_LOOPING, max_runs))


async def fail_interrupted_feeds(conn: asyncpg.Connection, load_id: str) -> None:
    await conn.execute(FAIL_INTERRUPTED_FEEDS, load_id)


async def add_totals(
    conn: asyncpg.Connection, load_id: str, seconds: float, counts: FeedCounts
) -> None:
    await conn.execute(
        ADD_TOTALS, load_id, seconds, counts.total_records, counts.total_duplicates,
        counts.parsing_errors, counts.datatype_mismatch_errors, counts.insert_errors,
    )  # fmt: skip


async def insert_feeds(
    conn: asyncpg.Connection, load_id: str, feeds: Sequence[tuple[str, str]]
) -> None:
    """Register the load's feeds (uri, kind) in the order they will run."""
    await conn.execute(
        INSERT_FEEDS,
        load_id,
        [uri for uri, _ in feeds],
        [kind for _, kind in feeds],
        list(range(len(feeds))),
    )


async def feeds(conn: asyncpg.Connection, load_id: str) -> list[Feed]:
    return rows(Feed, await conn.fetch(FEEDS, load_id))


async def start_feed(conn: asyncpg.Connection, load_id: str, uri: str) -> None:
    await conn.execute(START_FEED, load_id, uri)


async def finish_feed(
    conn: asyncpg.Connection,
    load_id: str,
    uri: str,
    status: str,
    seconds: float,
    counts: FeedCounts,
) -> None:
    await conn.execute(
        FINISH_FEED, load_id, uri, status, seconds, counts.total_records,
        counts.total_duplicates, counts.parsing_errors, counts.datatype_mismatch_errors,
        counts.insert_errors,
    )  # fmt: skip


async def feed_status_counts(conn: asyncpg.Connection, load_id: str) -> dict[str, int]:
    """How many of the load's feeds have each status, by status."""
    return {r["status"]: r["n"] for r in await conn.fetch(FEED_STATUS_COUNTS, load_id)}


async def add_error(
    conn: asyncpg.Connection, load_id: str, code: str, message: str, file_name: str, record: int
) -> None:
    """Log an error; its message and file name are made storable (they may quote a file)."""
    await conn.execute(
        ADD_ERROR, load_id, code, storable(message), storable(file_name), record, ERRORS_PER_LOAD
    )


async def add_errors(
    conn: asyncpg.Connection, load_id: str, errors: Sequence[tuple[str, str, str, int]]
) -> None:
    """Log errors given as (code, message, file name, record), in one round trip."""
    await conn.executemany(
        ADD_ERROR,
        [
            (load_id, code, storable(message), storable(file_name), record, ERRORS_PER_LOAD)
            for code, message, file_name, record in errors
        ],
    )


async def count_more_errors(conn: asyncpg.Connection, load_id: str, count: int) -> None:
    """Count errors past the ones kept (ERRORS_PER_LOAD), without logging them."""
    await conn.execute(COUNT_MORE_ERRORS, load_id, count)


async def errors_page(
    conn: asyncpg.Connection, load_id: str, offset: int, limit: int
) -> list[LoadError]:
    return rows(LoadError, await conn.fetch(ERRORS_PAGE, load_id, offset, limit))


async def count_errors(conn: asyncpg.Connection, load_id: str) -> int:
    return int(await conn.fetchval(COUNT_ERRORS, load_id))


async def loaded_files(conn: asyncpg.Connection, source: str) -> dict[str, str]:
    return {r["uri"]: r["etag"] for r in await conn.fetch(LOADED_FILES, source)}


async def remember_file(
    conn: asyncpg.Connection, source: str, uri: str, etag: str, load_id: str
) -> None:
    await conn.execute(REMEMBER_FILE, source, uri, etag, load_id)


async def has_previous_load(conn: asyncpg.Connection, source: str, load_id: str) -> bool:
    return bool(await conn.fetchval(HAS_PREVIOUS_LOAD, source, load_id))


async def notify_worker(conn: asyncpg.Connection, load_id: str) -> None:
    """Wake the runner (on commit), whichever replica it is in."""
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, load_id)


async def try_become_runner(conn: asyncpg.Connection) -> bool:
    """Take the session lock that makes this connection's process the one running loads."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", RUNNER_LOCK))


async def stop_being_runner(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1)", RUNNER_LOCK)
