"""PostgreSQL: the pool, identifier checks and the per-service migration runner.

Each service owns one schema. Its pool sets `search_path` to that schema, so a service's SQL
never names it; migrations are plain SQL files applied in order and recorded in
`<schema>.schema_migrations`, under an advisory lock so replicas starting together agree.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable
from importlib import resources
from importlib.abc import Traversable
from typing import TypeVar

import asyncpg

from loadbay_contracts.datasets import SQL_NAME
from loadbay_platform.settings import PostgresSettings

log = logging.getLogger(__name__)


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier, after checking it is a plain one (SQL_NAME)."""
    if not isinstance(name, str) or not SQL_NAME.match(name):
        raise ValueError(
            f"invalid identifier {name!r}: use letters, digits and _, not starting with a digit,"
            " at most 63 characters"
        )
    return f'"{name}"'


async def create_pool(settings: PostgresSettings, schema: str) -> asyncpg.Pool:
    quote_ident(schema)
    pool = await asyncpg.create_pool(
        settings.url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        command_timeout=settings.command_timeout_s,
        server_settings={"search_path": f"{schema},public", "application_name": schema},
    )
    assert pool is not None
    return pool


async def close_pool(pool: asyncpg.Pool, within_s: float = 10.0) -> None:
    """Close `pool`, waiting at most `within_s` for connections in use, then cut them off.

    A process must be able to stop: asyncpg (0.30-0.32) can lose a connection when a task is
    cancelled just as its acquire completes (the holder stays "in use"), and `Pool.close()`
    then waits for it for ever. That happens on shutdown, when every task is cancelled."""
    try:
        await asyncio.wait_for(pool.close(), within_s)
    except TimeoutError:
        log.warning("connections still in use %.0fs after closing the pool: cut off", within_s)
        pool.terminate()


async def ping(conn: asyncpg.Connection) -> None:
    await conn.fetchval("SELECT 1")


T = TypeVar("T")


async def watched(conn: asyncpg.Connection, operation: Awaitable[T], check_s: float = 1.0) -> T:
    """Run a long operation on `conn` (a COPY), failing it within seconds once the connection
    is lost, as an outage (ConnectionDoesNotExistError) the caller's retries wait out.

    asyncpg (0.30-0.32) can leave `copy_to_table` waiting for ever when the server goes away
    while the client's writes are paused (a full socket buffer, normal while streaming a big
    file); `command_timeout` does not fire then. The lost connection is still seen as closed.
    """
    task = asyncio.ensure_future(operation)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=check_s)
            if done:
                return task.result()
            if conn.is_closed():
                raise asyncpg.ConnectionDoesNotExistError(
                    "the connection to PostgreSQL was lost during a long operation (a COPY)"
                )
    finally:
        if not task.done():
            task.cancel()
            # Bounded: the cancelled COPY may itself wait on the dead connection.
            await asyncio.wait({task}, timeout=5)


_PLATFORM_SQL = """
CREATE TABLE IF NOT EXISTS outbox (
    id bigserial PRIMARY KEY,
    topic text NOT NULL,
    key text NOT NULL,
    envelope jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS inbox (
    event_id text NOT NULL,
    consumer text NOT NULL,
    topic text NOT NULL,
    handled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
"""


# Long work queued off the poll loop (loadbay_platform.work_queue).
_WORK_QUEUE_SQL = """
CREATE TABLE IF NOT EXISTS work_queue (
    id bigserial PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    event_type text NOT NULL,
    group_key text NOT NULL,
    envelope jsonb NOT NULL,
    starts int NOT NULL DEFAULT 0,
    worker text,
    queued_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz
);
CREATE INDEX IF NOT EXISTS work_queue_group ON work_queue (group_key, id);
"""


def _migration_files(package: str) -> list[Traversable]:
    folder = resources.files(package) / "migrations"
    return sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)


async def migrate(conn: asyncpg.Connection, schema: str, package: str) -> list[str]:
    """Create `schema` and apply the platform tables plus `<package>/migrations/*.sql` not yet
    applied. Returns the names of the migrations applied now."""
    qschema = quote_ident(schema)
    applied_now: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", zlib.crc32(schema.encode()))
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {qschema}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {qschema}.schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            r["name"] for r in await conn.fetch(f"SELECT name FROM {qschema}.schema_migrations")
        }
        steps = [
            ("0000_platform.sql", _PLATFORM_SQL),
            ("0000_platform_work_queue.sql", _WORK_QUEUE_SQL),
        ] + [(f.name, f.read_text()) for f in _migration_files(package)]
        await conn.execute(f"SET LOCAL search_path TO {qschema}, public")
        for name, sql in steps:
            if name in done:
                continue
            await conn.execute(sql)
            await conn.execute(f"INSERT INTO {qschema}.schema_migrations (name) VALUES ($1)", name)
            applied_now.append(name)
    return applied_now
