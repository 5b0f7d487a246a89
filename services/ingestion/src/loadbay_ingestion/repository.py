"""All SQL of the ingestion service. Functions take a connection and never commit."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from loadbay_ingestion.rows import (
    Binding,
    Connection,
    Run,
    RunObject,
    Schedule,
    SealedSecrets,
    VersionChange,
)
from loadbay_platform.rows import row, row_or_none, rows

# -- connections -------------------------------------------------------------------------------

INSERT_CONNECTION = """
INSERT INTO connections (id, name, description, bucket, access_type, version, region,
                         endpoint_url, kms_key_arn, access_key_id_enc, secret_access_key_enc,
                         owner_id, owner_email)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (owner_id, name) DO NOTHING RETURNING id
"""
CONNECTION_BY_ID = "SELECT * FROM connections WHERE id = $1"
# A connection is visible to its owner and its authorized users. Names are unique per owner:
# a name means the caller's own connection first, else the oldest one shared with them.
VISIBLE_CONNECTION = """
SELECT c.* FROM connections c
WHERE c.name = $1 AND (c.owner_id = $2 OR EXISTS (
    SELECT 1 FROM connection_users u WHERE u.connection_id = c.id AND u.user_id = $2))
ORDER BY c.owner_id = $2 DESC, c.created_at, c.id LIMIT 1
"""
SEALED_SECRETS = """
SELECT id, access_key_id_enc, secret_access_key_enc FROM connections
WHERE access_key_id_enc IS NOT NULL ORDER BY id
"""
RESEAL = """
UPDATE connections SET access_key_id_enc = $3, secret_access_key_enc = $4
WHERE id = $1 AND secret_access_key_enc = $2
"""
LIST_CONNECTIONS = """
SELECT c.* FROM connections c
WHERE c.owner_id = $1 OR EXISTS (
    SELECT 1 FROM connection_users u WHERE u.connection_id = c.id AND u.user_id = $1)
ORDER BY c.name
"""
LOCK_CONNECTION = "SELECT * FROM connections WHERE id = $1 FOR UPDATE"
UPDATE_CONNECTION = """
UPDATE connections
SET description = $2, bucket = $3, region = $4, endpoint_url = $5, kms_key_arn = $6,
    access_key_id_enc = $7, secret_access_key_enc = $8, updated_at = now()
WHERE id = $1
"""
SET_VERSION = "UPDATE connections SET version = $2, updated_at = now() WHERE id = $1"
DELETE_CONNECTION = "DELETE FROM connections WHERE id = $1"
CONNECTION_USERS = "SELECT user_id FROM connection_users WHERE connection_id = $1 ORDER BY user_id"
CLEAR_CONNECTION_USERS = "DELETE FROM connection_users WHERE connection_id = $1"
ADD_CONNECTION_USERS = """
INSERT INTO connection_users (connection_id, user_id)
SELECT $1, u FROM unnest($2::text[]) AS u ON CONFLICT DO NOTHING
"""
INSERT_VERSION_CHANGE = """
INSERT INTO connection_versions (connection_id, action, from_version, to_version, changed_by)
VALUES ($1, $2, $3, $4, $5)
"""
VERSION_HISTORY = "SELECT * FROM connection_versions WHERE connection_id = $1 ORDER BY id"


async def insert_connection(
    conn: asyncpg.Connection,
    *,
    id: str,
    name: str,
    description: str,
    bucket: str,
    access_type: str,
    version: str,
    region: str | None,
    endpoint_url: str | None,
    kms_key_arn: str | None,
    access_key_id_enc: bytes | None,
    secret_access_key_enc: bytes | None,
    owner_id: str,
    owner_email: str,
) -> bool:
    """False when a connection of that name exists already."""
    created = await conn.fetchval(
        INSERT_CONNECTION,
        id,
        name,
        description,
        bucket,
        access_type,
        version,
        region,
        endpoint_url,
        kms_key_arn,
        access_key_id_enc,
        secret_access_key_enc,
        owner_id,
        owner_email,
    )
    return created is not None


async def sealed_secrets(conn: asyncpg.Connection) -> list[SealedSecrets]:
    return rows(SealedSecrets, await conn.fetch(SEALED_SECRETS))


async def reseal(
    conn: asyncpg.Connection, connection_id: str, old_secret: bytes, key_id: bytes, secret: bytes
) -> None:
    """Store re-sealed secrets unless they changed meanwhile (then they are current)."""
    await conn.execute(RESEAL, connection_id, old_secret, key_id, secret)


async def connection_by_id(conn: asyncpg.Connection, connection_id: str) -> Connection | None:
    return row_or_none(Connection, await conn.fetchrow(CONNECTION_BY_ID, connection_id))


async def visible_connection(
    conn: asyncpg.Connection, name: str, user_id: str
) -> Connection | None:
    return row_or_none(Connection, await conn.fetchrow(VISIBLE_CONNECTION, name, user_id))


async def list_connections(conn: asyncpg.Connection, user_id: str) -> list[Connection]:
    return rows(Connection, await conn.fetch(LIST_CONNECTIONS, user_id))


async def lock_connection(conn: asyncpg.Connection, connection_id: str) -> Connection | None:
    return row_or_none(Connection, await conn.fetchrow(LOCK_CONNECTION, connection_id))


async def update_connection(
    conn: asyncpg.Connection,
    connection_id: str,
    *,
    description: str,
    bucket: str,
    region: str | None,
    endpoint_url: str | None,
    kms_key_arn: str | None,
    access_key_id_enc: bytes | None,
    secret_access_key_enc: bytes | None,
) -> None:
    await conn.execute(
        UPDATE_CONNECTION,
        connection_id,
        description,
        bucket,
        region,
        endpoint_url,
        kms_key_arn,
        access_key_id_enc,
        secret_access_key_enc,
    )


async def set_version(conn: asyncpg.Connection, connection_id: str, version: str) -> None:
    await conn.execute(SET_VERSION, connection_id, version)


async def delete_connection(conn: asyncpg.Connection, connection_id: str) -> None:
    await conn.execute(DELETE_CONNECTION, connection_id)


async def connection_users(conn: asyncpg.Connection, connection_id: str) -> list[str]:
    return [r["user_id"] for r in await conn.fetch(CONNECTION_USERS, connection_id)]


async def set_connection_users(
    conn: asyncpg.Connection, connection_id: str, user_ids: Sequence[str]
) -> None:
    await conn.execute(CLEAR_CONNECTION_USERS, connection_id)
    await conn.execute(ADD_CONNECTION_USERS, connection_id, list(user_ids))


async def insert_version_change(
    conn: asyncpg.Connection, connection_id: str, action: str, from_version: str | None,
    to_version: str, changed_by: str,
) -> None:  # fmt: skip
    await conn.execute(
        INSERT_VERSION_CHANGE, connection_id, action, from_version, to_version, changed_by
    )


async def version_history(conn: asyncpg.Connection, connection_id: str) -> list[VersionChange]:
    return rows(VersionChange, await conn.fetch(VERSION_HISTORY, connection_id))


# -- bindings ----------------------------------------------------------------------------------

INSERT_BINDING = """
INSERT INTO bindings (id, connection_id, dataset, dataset_type, file_type, directory_path,
                      user_id, user_email, dataset_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (dataset) WHERE disabled_at IS NULL DO NOTHING RETURNING id
"""
# The binding of a dataset name on a connection the user may see: the enabled one, else the
# newest disabled one (kept for its history).
VISIBLE_BINDING = """
SELECT b.* FROM bindings b JOIN connections c ON c.id = b.connection_id
WHERE b.dataset = $1 AND (c.owner_id = $2 OR EXISTS (
    SELECT 1 FROM connection_users u WHERE u.connection_id = c.id AND u.user_id = $2))
ORDER BY b.disabled_at IS NULL DESC, b.created_at DESC LIMIT 1
"""
ENABLED_BINDING = "SELECT * FROM bindings WHERE dataset = $1 AND disabled_at IS NULL"
# Bindings of a deleted dataset (older bindings have no dataset id: matched by name).
DISABLE_BINDINGS = """
UPDATE bindings SET disabled_at = now(), disabled_reason = $4
WHERE disabled_at IS NULL
  AND (dataset_id = $1 OR (dataset_id IS NULL AND dataset = $2 || '/' || $3))
RETURNING id
"""
BINDING_BY_ID = "SELECT * FROM bindings WHERE id = $1"
LIST_BINDINGS = "SELECT * FROM bindings WHERE connection_id = $1 ORDER BY dataset"
DELETE_BINDING = "DELETE FROM bindings WHERE id = $1"
DELETE_DISABLED_BINDINGS = (
    "DELETE FROM bindings WHERE connection_id = $1 AND disabled_at IS NOT NULL"
)


async def insert_binding(
    conn: asyncpg.Connection,
    *,
    id: str,
    connection_id: str,
    dataset: str,
    dataset_type: str,
    file_type: str,
    directory_path: str,
    user_id: str,
    user_email: str,
    dataset_id: str,
) -> bool:
    """False when the dataset is bound to a connection already."""
    created = await conn.fetchval(
        INSERT_BINDING,
        id,
        connection_id,
        dataset,
        dataset_type,
        file_type,
        directory_path,
        user_id,
        user_email,
        dataset_id,
    )
    return created is not None


async def visible_binding(conn: asyncpg.Connection, dataset: str, user_id: str) -> Binding | None:
    return row_or_none(Binding, await conn.fetchrow(VISIBLE_BINDING, dataset, user_id))


async def enabled_binding(conn: asyncpg.Connection, dataset: str) -> Binding | None:
    return row_or_none(Binding, await conn.fetchrow(ENABLED_BINDING, dataset))


async def disable_bindings(
    conn: asyncpg.Connection, dataset_id: str, domain: str, name: str, reason: str
) -> list[str]:
    """Disable the bindings of a deleted dataset; their ids."""
    return [r["id"] for r in await conn.fetch(DISABLE_BINDINGS, dataset_id, domain, name, reason)]


async def binding_by_id(conn: asyncpg.Connection, binding_id: str) -> Binding | None:
    return row_or_none(Binding, await conn.fetchrow(BINDING_BY_ID, binding_id))


async def list_bindings(conn: asyncpg.Connection, connection_id: str) -> list[Binding]:
    return rows(Binding, await conn.fetch(LIST_BINDINGS, connection_id))


async def delete_binding(conn: asyncpg.Connection, binding_id: str) -> None:
    await conn.execute(DELETE_BINDING, binding_id)


async def delete_disabled_bindings(conn: asyncpg.Connection, connection_id: str) -> None:
    await conn.execute(DELETE_DISABLED_BINDINGS, connection_id)


# -- schedules ---------------------------------------------------------------------------------

UPSERT_SCHEDULE = """
INSERT INTO schedules (binding_id, job_type, cron, next_run_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (binding_id) DO UPDATE
    SET job_type = excluded.job_type, cron = excluded.cron, next_run_at = excluded.next_run_at
"""
DELETE_SCHEDULE = "DELETE FROM schedules WHERE binding_id = $1"
GET_SCHEDULE = "SELECT * FROM schedules WHERE binding_id = $1"
# Row locks make a due schedule fire once, whichever replica sees it first.
DUE_SCHEDULES = """
SELECT * FROM schedules WHERE next_run_at <= now() ORDER BY next_run_at
FOR UPDATE SKIP LOCKED LIMIT 50
"""
ADVANCE_SCHEDULE = "UPDATE schedules SET next_run_at = $2 WHERE binding_id = $1"


async def upsert_schedule(
    conn: asyncpg.Connection, binding_id: str, job_type: str, cron: str, next_run_at: datetime
) -> None:
    await conn.execute(UPSERT_SCHEDULE, binding_id, job_type, cron, next_run_at)


async def delete_schedule(conn: asyncpg.Connection, binding_id: str) -> bool:
    return str(await conn.execute(DELETE_SCHEDULE, binding_id)) != "DELETE 0"


async def get_schedule(conn: asyncpg.Connection, binding_id: str) -> Schedule | None:
    return row_or_none(Schedule, await conn.fetchrow(GET_SCHEDULE, binding_id))


async def due_schedules(conn: asyncpg.Connection) -> list[Schedule]:
    return rows(Schedule, await conn.fetch(DUE_SCHEDULES))


async def advance_schedule(
    conn: asyncpg.Connection, binding_id: str, next_run_at: datetime
) -> None:
    await conn.execute(ADVANCE_SCHEDULE, binding_id, next_run_at)


# -- runs --------------------------------------------------------------------------------------

INSERT_RUN = """
INSERT INTO runs (id, binding_id, status, trigger, triggered_by)
VALUES ($1, $2, 'queued', $3, $4) ON CONFLICT DO NOTHING RETURNING id
"""
ACTIVE_RUN = "SELECT id FROM runs WHERE binding_id = $1 AND status IN ('queued', 'running')"
GET_RUN = "SELECT * FROM runs WHERE id = $1"
LIST_RUNS = "SELECT * FROM runs WHERE binding_id = $1 ORDER BY queued_at DESC LIMIT $2"
# Claims are serialized across replicas by this transaction-level advisory lock, so the count
# of running runs and the claim that follows it cannot interleave (the throttle's slots).
LOCK_SLOTS = "SELECT pg_advisory_xact_lock($1)"
SLOTS_KEY = zlib.crc32(b"loadbay_ingestion:slots")
COUNT_RUNNING = "SELECT count(*) FROM runs WHERE status = 'running'"
CLAIM_STALE = """
UPDATE runs SET worker = $1, heartbeat_at = now()
WHERE id = (SELECT id FROM runs
            WHERE status = 'running' AND heartbeat_at < now() - make_interval(secs => $2)
            ORDER BY started_at FOR UPDATE SKIP LOCKED LIMIT 1)
RETURNING *
"""
CLAIM_QUEUED = """
UPDATE runs SET status = 'running', worker = $1, started_at = now(), heartbeat_at = now()
WHERE id = (SELECT id FROM runs WHERE status = 'queued'
            ORDER BY queued_at FOR UPDATE SKIP LOCKED LIMIT 1)
RETURNING *
"""
# The version, target and batch folder are fixed once; a resumed run keeps them. Two runs of
# a binding in the same second get distinct batch folders (upload_date is seconds).
FIX_RUN_PLAN = """
UPDATE runs r SET version = coalesce(version, $2),
                  skip_lz = CASE WHEN version IS NULL THEN $3 ELSE skip_lz END,
                  upload_date = coalesce(upload_date, greatest($4, (
                      SELECT max(o.upload_date) + 1 FROM runs o
                      WHERE o.binding_id = r.binding_id AND o.id <> r.id)))
WHERE id = $1 RETURNING *
"""
HEARTBEAT = """
UPDATE runs SET heartbeat_at = now()
WHERE id = ANY($1::text[]) AND status = 'running' AND worker = $2
"""
FINISH_RUN = """
UPDATE runs SET status = $2, reason = $3, copied_count = $4, skipped_count = $5,
                failed_count = $6, bytes_copied = $7, finished_at = now()
WHERE id = $1 AND status IN ('queued', 'running') RETURNING *
"""


async def insert_run(
    conn: asyncpg.Connection, run_id: str, binding_id: str, trigger: str, triggered_by: str
) -> bool:
    """Queue a run; False when the binding already has a queued or running one."""
    created = await conn.fetchval(INSERT_RUN, run_id, binding_id, trigger, triggered_by)
    return created is not None


async def active_run(conn: asyncpg.Connection, binding_id: str) -> str | None:
    found: str | None = await conn.fetchval(ACTIVE_RUN, binding_id)
    return found


async def get_run(conn: asyncpg.Connection, run_id: str) -> Run | None:
    return row_or_none(Run, await conn.fetchrow(GET_RUN, run_id))


async def list_runs(conn: asyncpg.Connection, binding_id: str, limit: int) -> list[Run]:
    return rows(Run, await conn.fetch(LIST_RUNS, binding_id, limit))


async def lock_slots(conn: asyncpg.Connection) -> None:
    await conn.execute(LOCK_SLOTS, SLOTS_KEY)


async def count_running(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval(COUNT_RUNNING))


async def claim_stale(conn: asyncpg.Connection, worker: str, stale_after_s: float) -> Run | None:
    return row_or_none(Run, await conn.fetchrow(CLAIM_STALE, worker, stale_after_s))


async def claim_queued(conn: asyncpg.Connection, worker: str) -> Run | None:
    return row_or_none(Run, await conn.fetchrow(CLAIM_QUEUED, worker))


async def fix_run_plan(
    conn: asyncpg.Connection, run_id: str, version: str, skip_lz: bool, upload_date: int
) -> Run:
    return row(Run, await conn.fetchrow(FIX_RUN_PLAN, run_id, version, skip_lz, upload_date))


async def heartbeat(conn: asyncpg.Connection, run_ids: Sequence[str], worker: str) -> None:
    await conn.execute(HEARTBEAT, list(run_ids), worker)


async def finish_run(
    conn: asyncpg.Connection,
    run_id: str,
    *,
    status: str,
    reason: str | None,
    copied: int,
    skipped: int,
    failed: int,
    bytes_copied: int,
) -> Run | None:
    """End a run; None if it had ended already."""
    return row_or_none(
        Run,
        await conn.fetchrow(
            FINISH_RUN, run_id, status, reason, copied, skipped, failed, bytes_copied
        ),
    )


# -- the per-run object ledger and the per-binding ingested-files ledger ------------------------

RECORD_OBJECTS = """
INSERT INTO run_objects (run_id, source_key, name, size, etag, storage_class, status,
                         dest_bucket, dest_key, dest_etag, reason)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[],
                         $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])
ON CONFLICT (run_id, source_key) DO UPDATE
    SET status = excluded.status, dest_bucket = excluded.dest_bucket,
        dest_key = excluded.dest_key, dest_etag = excluded.dest_etag, reason = excluded.reason,
        recorded_at = now()
    WHERE run_objects.status <> 'copied'
"""
RUN_OBJECTS = "SELECT * FROM run_objects WHERE run_id = $1 ORDER BY source_key"
COPIED_IN_RUN = "SELECT * FROM run_objects WHERE run_id = $1 AND status = 'copied'"
INGESTED_AMONG = """
SELECT name, size, etag FROM ingested_files WHERE binding_id = $1 AND name = ANY($2::text[])
"""
INSERT_INGESTED = """
INSERT INTO ingested_files (binding_id, name, size, etag, run_id)
SELECT $1, * , $5 FROM unnest($2::text[], $3::bigint[], $4::text[])
ON CONFLICT DO NOTHING
"""

ObjectRow = tuple[str, str, int, str, str, str, str | None, str | None, str | None, str | None]


async def record_objects(conn: asyncpg.Connection, run_id: str, rows: Sequence[ObjectRow]) -> None:
    """Upsert ledger rows (source_key, name, size, etag, storage_class, status, dest_bucket,
    dest_key, dest_etag, reason); a `copied` row is never overwritten."""
    if not rows:
        return
    columns = [list(c) for c in zip(*rows, strict=True)]
    await conn.execute(RECORD_OBJECTS, run_id, *columns)


async def run_objects(conn: asyncpg.Connection, run_id: str) -> list[RunObject]:
    return rows(RunObject, await conn.fetch(RUN_OBJECTS, run_id))


async def copied_in_run(conn: asyncpg.Connection, run_id: str) -> list[RunObject]:
    return rows(RunObject, await conn.fetch(COPIED_IN_RUN, run_id))


async def ingested_among(
    conn: asyncpg.Connection, binding_id: str, names: Sequence[str]
) -> set[tuple[str, int, str]]:
    rows = await conn.fetch(INGESTED_AMONG, binding_id, list(names))
    return {(r["name"], r["size"], r["etag"]) for r in rows}


async def insert_ingested(
    conn: asyncpg.Connection, binding_id: str, run_id: str, files: Sequence[tuple[str, int, str]]
) -> None:
    if not files:
        return
    names, sizes, etags = (list(c) for c in zip(*files, strict=True))
    await conn.execute(INSERT_INGESTED, binding_id, names, sizes, etags, run_id)
