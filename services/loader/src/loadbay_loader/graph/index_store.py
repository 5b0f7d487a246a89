"""Bulk mode: a batch large against the graph table it writes drops that table's indexes,
writes its rows, and builds the indexes again, all in the batch's transaction.

Keeping a btree up to date row by row costs five times and more what building it costs per
row (1M edges: ~1 s of index upkeep against ~0.2 s to build the primary key from scratch, on
a 2-core machine), so a first load into an empty graph, and any batch at least half its
table's size, takes this path. The indexes are whatever the migrations made (read from the
catalog, so a later migration's index is rebuilt too), and the batch holds the tables in ACCESS
EXCLUSIVE mode until it commits: readers of the graph wait for that batch, and other feeds of
the load write after it. A rolled-back batch leaves the indexes as they were (DDL is
transactional). Unique indexes still hold: building one over a duplicated key fails with a
unique violation, which the caller treats as an id seen twice.

Locks are always taken before the batch reads a table it writes, and in one order
(:data:`VERTEX_TABLES`), so that two feeds in bulk and normal mode cannot deadlock. A batch
that cannot have its tables to itself within BULK_LOCK_WAIT (a long query on the graph) keeps
the indexes instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import asyncpg

VERTEX_TABLES = ("graph_vertices", "graph_vertex_labels", "graph_vertex_properties")
EDGE_TABLES = ("graph_edges",)
BULK_MIN_ROWS = 10_000  # smaller batches keep the indexes (and never lock out readers)
# A batch rebuilds the indexes of a table at most this many times its size: rebuilding costs
# about 0.2 us per row of the table plus a check that no id is loaded (a hash join, ~0.3 us a
# row), keeping a primary key up to date 1-1.5 us per row added, and several times that once
# the index outgrows the caches (250k edges into 1M: no gain; 1.45M into 1.6M: 6.3 us a row
# kept, against 2.7 in bulk mode).
BULK_TABLE_PER_BATCH = 2
# How long bulk mode waits for the tables' readers and writers to finish (a long query on
# the graph); then the batch keeps the indexes rather than queue every new reader behind it.
BULK_LOCK_WAIT = "2s"
INDEX_BUILD_MEMORY = "256MB"  # maintenance_work_mem of a rebuild (sorts 10M keys in memory)
_ROWS_PER_PAGE_UNKNOWN = 100  # a table never analyzed: a guess of its rows per 8 kB page

_ESTIMATED_ROWS = """
SELECT CASE WHEN pages = 0 THEN 0
            WHEN reltuples >= 0 AND relpages > 0 THEN reltuples / relpages * pages
            ELSE pages * $2::int END
FROM (SELECT reltuples, relpages,
             pg_relation_size(oid) / current_setting('block_size')::int AS pages
      FROM pg_class WHERE oid = $1::regclass) c
"""

# The indexes of some tables, as the statements that drop them and the ones that build them
# again (a constraint's index through its constraint). Constraints come first, so the primary
# key is built before the other indexes.
_INDEX_STATEMENTS = """
SELECT CASE WHEN con.oid IS NULL THEN format('DROP INDEX %s', i.indexrelid::regclass)
            ELSE format('ALTER TABLE %s DROP CONSTRAINT %I', i.indrelid::regclass, con.conname)
       END AS drop_sql,
       CASE WHEN con.oid IS NULL THEN pg_get_indexdef(i.indexrelid)
            ELSE format('ALTER TABLE %s ADD CONSTRAINT %I %s', i.indrelid::regclass,
                        con.conname, pg_get_constraintdef(con.oid))
       END AS create_sql
FROM pg_index i
LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
WHERE i.indrelid = ANY($1::text[]::regclass[])
ORDER BY array_position($1::text[], i.indrelid::regclass::text), con.oid IS NULL,
         i.indexrelid
"""


@dataclass(frozen=True)
class DroppedIndexes:
    """What :func:`drop_indexes` dropped: build it again with :func:`rebuild_indexes`."""

    statements: tuple[str, ...]


async def estimated_rows(conn: asyncpg.Connection, table: str) -> float:
    """The table's rows as the planner would guess them: its current size in pages times the
    rows per page of its last statistics (an emptied table counts none)."""
    rows: float = await conn.fetchval(_ESTIMATED_ROWS, table, _ROWS_PER_PAGE_UNKNOWN)
    return rows


async def is_empty(conn: asyncpg.Connection, table: str) -> bool:
    """Whether the table has no page at all (so no row; exact while the caller holds it in
    ACCESS EXCLUSIVE mode)."""
    empty: bool = await conn.fetchval("SELECT pg_relation_size($1::regclass) = 0", table)
    return empty


async def bulk_worth_it(conn: asyncpg.Connection, table: str, batch_rows: int) -> bool:
    """Whether a batch of ``batch_rows`` should rebuild ``table``'s indexes rather than keep
    them: it is large, and the table holds at most BULK_TABLE_PER_BATCH times its rows."""
    if batch_rows < BULK_MIN_ROWS:
        return False
    return await estimated_rows(conn, table) <= BULK_TABLE_PER_BATCH * batch_rows


async def lock(
    conn: asyncpg.Connection,
    tables: Sequence[str],
    mode: Literal["ROW EXCLUSIVE", "ACCESS EXCLUSIVE"],
) -> None:
    """Lock the tables in their listed order (inside the caller's transaction)."""
    await conn.execute(f"LOCK TABLE {', '.join(tables)} IN {mode} MODE")


async def lock_for_bulk(conn: asyncpg.Connection, tables: Sequence[str]) -> bool:
    """Lock the tables in ACCESS EXCLUSIVE mode within BULK_LOCK_WAIT, or say False (then
    nothing is locked)."""
    try:
        async with conn.transaction():
            previous = await conn.fetchval("SELECT current_setting('lock_timeout')")
            await conn.execute(f"SET LOCAL lock_timeout = '{BULK_LOCK_WAIT}'")
            await lock(conn, tables, "ACCESS EXCLUSIVE")
            await conn.execute("SELECT set_config('lock_timeout', $1, true)", previous)
    except asyncpg.LockNotAvailableError:
        return False
    return True


async def drop_indexes(conn: asyncpg.Connection, tables: Sequence[str]) -> DroppedIndexes | None:
    """Drop the tables' indexes (the caller holds them in ACCESS EXCLUSIVE mode), or None if
    something depends on one (a foreign key a later migration added): then nothing changed."""
    rows = await conn.fetch(_INDEX_STATEMENTS, list(tables))
    try:
        async with conn.transaction():
            for row in rows:
                await conn.execute(row["drop_sql"])
    except asyncpg.DependentObjectsStillExistError:
        return None
    return DroppedIndexes(tuple(row["create_sql"] for row in rows))


async def rebuild_indexes(conn: asyncpg.Connection, dropped: DroppedIndexes) -> None:
    """Build the dropped indexes again. Raises UniqueViolationError if a unique key is now
    duplicated (the caller's transaction is then aborted)."""
    await conn.execute(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")
    for statement in dropped.statements:
        await conn.execute(statement)
