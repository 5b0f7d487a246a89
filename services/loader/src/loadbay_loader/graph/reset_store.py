"""All SQL of Neptune's fast reset (reset.py): the one reset token (migration
0011_graph_reset.sql) and emptying the graph. Functions take a connection and never commit;
:func:`reset_graph` must run inside the caller's transaction, after :func:`lock_loads` (so no
load starts meanwhile)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg

# What a reset empties: the property graph, the RDF quads, and which files each source has
# loaded (RESUME and AUTO would otherwise skip files whose data the reset removed).
GRAPH_TABLES = (
    "graph_vertices",
    "graph_vertex_labels",
    "graph_vertex_properties",
    "graph_edges",
    "quads",
    "graph_source_files",
)
# What it keeps: the loads' history (their status stays readable, as the loader's own log)
# and the token itself (deleted by the reset's own statement).
KEPT_TABLES = ("graph_loads", "graph_load_feeds", "graph_load_errors", "graph_reset_token")

ISSUE_TOKEN = """
INSERT INTO graph_reset_token (only_one, token, issued_by, issued_at) VALUES (true, $1, $2, now())
ON CONFLICT (only_one) DO UPDATE
    SET token = excluded.token, issued_by = excluded.issued_by, issued_at = excluded.issued_at
"""
# The token, whether it is older than the lifetime; locked until the caller's transaction ends.
CURRENT_TOKEN = """
SELECT token, issued_at < now() - $1::interval AS expired FROM graph_reset_token FOR UPDATE
"""
DELETE_TOKEN = "DELETE FROM graph_reset_token"
# The same lock admissions take (loads_store.LOCK_QUEUE): no load can start, or
# change status, until the reset commits.
LOCK_LOADS = "LOCK TABLE graph_loads IN SHARE ROW EXCLUSIVE MODE"
RUNNING_LOADS = "SELECT id FROM graph_loads WHERE status = 'LOAD_IN_PROGRESS' ORDER BY seq"
RESET_GRAPH = f"TRUNCATE {', '.join(GRAPH_TABLES)}"
# TRUNCATE waits for every reader of the graph's tables; a reset does not wait for ever.
LOCK_TIMEOUT = "SET LOCAL lock_timeout = '{seconds}s'"


async def issue_token(conn: asyncpg.Connection, issued_by: str | None) -> str:
    """A new token, which replaces any earlier one."""
    token = str(uuid.uuid4())
    await conn.execute(ISSUE_TOKEN, token, issued_by)
    return token


async def current_token(conn: asyncpg.Connection, lifetime: timedelta) -> tuple[str, bool] | None:
    """The latest token and whether it has expired, or None; the row stays locked."""
    row = await conn.fetchrow(CURRENT_TOKEN, lifetime)
    return None if row is None else (str(row["token"]), bool(row["expired"]))


async def bound_lock_waits(conn: asyncpg.Connection, seconds: int) -> None:
    """Lock waits in this transaction fail after `seconds` (asyncpg's LockNotAvailableError)."""
    await conn.execute(LOCK_TIMEOUT.format(seconds=int(seconds)))


async def lock_loads(conn: asyncpg.Connection) -> None:
    await conn.execute(LOCK_LOADS)


async def running_loads(conn: asyncpg.Connection) -> list[str]:
    return [row["id"] for row in await conn.fetch(RUNNING_LOADS)]


async def reset_graph(conn: asyncpg.Connection) -> None:
    """Empty the graph and use up the token."""
    await conn.execute(RESET_GRAPH)
    await conn.execute(DELETE_TOKEN)
