"""All SQL of the workspaces' tables (see loads.py for the semantics; the staging's SQL is in
staging_store.py).

Each workspace's dataset table is ``<schema_name>.<dataset>``, which the loader creates and
keeps. Every write to one first claims it for its workspace (the owner is the workspace's
schema: one per workspace) in the loader's registry of warehouse tables, so a load never
rewrites a reload dataset's table; a table in a ``ws_`` schema that was never registered
(made before the registry) is adopted, as ``ws_`` schemas belong to workspaces alone.

Identifiers come from the contract's patterns and are quoted again here; values are always
``$n`` parameters.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg

from loadbay_loader.repository import TableClaim, claim_tables
from loadbay_loader.warehouse.tabular import SQL_TYPES
from loadbay_loader.workspace.staging_store import Rows, StagingColumn, cols, count
from loadbay_platform.db import quote_ident, watched
from loadbay_platform.warehouse import WORKSPACE_PREFIX


@dataclass(frozen=True)
class Existing:
    """What a workspace's table is before the load: its columns (``format_type`` spelling;
    empty if there is no table) and whether the key's unique index is there."""

    columns: dict[str, str]
    key_index: bool


def _table(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def key_index_name(table: str, key: Sequence[str]) -> str:
    # Named after the key too, so a dataset whose key changes gets the index it needs.
    digest = hashlib.sha1(",".join([table, *key]).encode()).hexdigest()[:8]
    return f"{table[:40]}_key_{digest}"


async def existing_tables(
    conn: asyncpg.Connection, schemas: Sequence[str], table: str, key: Sequence[str]
) -> dict[str, Existing]:
    """`Existing` of ``<schema>.<table>`` for each schema, in one round trip."""
    rows = await conn.fetch(
        "SELECT s.schema, to_regclass(s.index_name) IS NOT NULL AS key_index,"
        " coalesce(array_agg(a.attname ORDER BY a.attnum) FILTER (WHERE a.attname IS NOT NULL),"
        "  '{}') AS names,"
        " coalesce(array_agg(format_type(a.atttypid, NULL) ORDER BY a.attnum)"
        "  FILTER (WHERE a.attname IS NOT NULL), '{}') AS types"
        " FROM unnest($1::text[], $2::text[], $3::text[]) AS s(schema, table_name, index_name)"
        " LEFT JOIN pg_attribute a ON a.attrelid = to_regclass(s.table_name)"
        "  AND a.attnum > 0 AND NOT a.attisdropped"
        " GROUP BY s.schema, s.index_name",
        list(schemas),
        [_table(s, table) for s in schemas],
        [_table(s, key_index_name(table, key)) for s in schemas],
    )
    return {
        r["schema"]: Existing(dict(zip(r["names"], r["types"], strict=True)), r["key_index"])
        for r in rows
    }


async def claim(conn: asyncpg.Connection, schema: str, table: str) -> None:
    """Raises ``asyncpg.InsufficientPrivilegeError`` if the table is not this workspace's."""
    await claim_all(conn, [schema], table)


async def claim_all(conn: asyncpg.Connection, schemas: Sequence[str], table: str) -> None:
    """`claim` for many workspaces, in one pipelined round trip (raises for the first table
    that is not its workspace's)."""
    await claim_tables(
        conn,
        [
            TableClaim(schema, table, "workspace", schema, schema.startswith(WORKSPACE_PREFIX))
            for schema in schemas
        ],
    )


async def create_tables(
    conn: asyncpg.Connection, schemas: Sequence[str], table: str, columns: Sequence[StagingColumn]
) -> None:
    """`create_table` in many schemas, in one round trip."""
    body = ", ".join(f"{quote_ident(c.name)} {SQL_TYPES[c.type]}" for c in columns)
    await conn.execute(
        "; ".join(
            f"CREATE SCHEMA IF NOT EXISTS {quote_ident(s)};"
            f" CREATE TABLE IF NOT EXISTS {_table(s, table)} ({body})"
            for s in schemas
        )
    )


async def create_table(
    conn: asyncpg.Connection, schema: str, table: str, columns: Sequence[StagingColumn]
) -> None:
    """Schema and table, in one round trip. (The key's unique index: `add_unique_index`.)"""
    await create_tables(conn, [schema], table, columns)


async def add_column(
    conn: asyncpg.Connection, schema: str, table: str, column: StagingColumn
) -> None:
    await conn.execute(
        f"ALTER TABLE {_table(schema, table)}"
        f" ADD COLUMN IF NOT EXISTS {quote_ident(column.name)} {SQL_TYPES[column.type]}"
    )


async def add_unique_index(
    conn: asyncpg.Connection, schema: str, table: str, key: Sequence[str]
) -> None:
    """The unique index on the key (fails if the rows already break it). Built on a table's
    rows at once, it costs far less than the same rows inserted into it one by one."""
    await conn.execute(
        f"CREATE UNIQUE INDEX IF NOT EXISTS {quote_ident(key_index_name(table, key))}"
        f" ON {_table(schema, table)} ({cols(key)})"
    )


async def delete_all(conn: asyncpg.Connection, schema: str, table: str) -> int:
    """A full load's first step. DELETE rather than TRUNCATE: readers keep reading the old rows
    until commit instead of queueing behind an exclusive lock."""
    return count(await conn.execute(f"DELETE FROM {_table(schema, table)}"))


async def copy_rows(
    conn: asyncpg.Connection,
    schema: str,
    table: str,
    columns: Sequence[str],
    rows: AsyncIterator[bytes],
    *,
    non_text: Sequence[str],
) -> int:
    """COPY CSV rows (no header; ``columns`` in their order) into the table, read as
    tabular.copy_csv reads a file (a quoted empty value is NULL outside text columns)."""
    status: str = await watched(
        conn,
        conn.copy_to_table(
            table,
            schema_name=schema,
            source=rows,
            columns=list(columns),
            format="csv",
            force_null=list(non_text) or None,
        ),
    )
    return count(status)


async def tables_breaking_key(
    conn: asyncpg.Connection, schemas: Sequence[str], table: str, key: Sequence[str]
) -> list[str]:
    """The schemas whose ``<schema>.<table>`` has a key value twice or an empty one: what a
    full load's direct COPY must not leave (one hashed pass over each table, 100 per query)."""
    empty = " OR ".join(f"{quote_ident(k)} IS NULL" for k in key)
    broken: list[str] = []
    for start in range(0, len(schemas), 100):
        batch = schemas[start : start + 100]
        checks = " UNION ALL ".join(
            f"SELECT {i} AS i WHERE EXISTS (SELECT FROM {_table(s, table)} GROUP BY {cols(key)}"
            f" HAVING count(*) > 1 OR bool_or({empty}))"
            for i, s in enumerate(batch)
        )
        broken += [batch[r["i"]] for r in await conn.fetch(checks)]
    return broken


async def rewrite(
    conn: asyncpg.Connection,
    schema: str,
    table: str,
    columns: Sequence[str],
    rows: Rows,
    *,
    empty: bool,
) -> tuple[int, int]:
    """Full load: delete every row (unless the table is new: ``empty``), insert the live rows.
    Returns (inserted, deleted). Two statements: the inserted rows may have the keys of the
    deleted ones."""
    deleted = 0 if empty else await delete_all(conn, schema, table)
    inserted = count(
        await conn.execute(
            f"INSERT INTO {_table(schema, table)} ({cols(columns)})"
            f" SELECT {cols(columns)} FROM {rows.sql} AS b WHERE NOT b._deleted",
            *rows.params,
        )
    )
    return inserted, deleted


async def merge(
    conn: asyncpg.Connection,
    schema: str,
    table: str,
    columns: Sequence[str],
    rows: Rows,
    match_on: Sequence[str],
    *,
    by_key: bool,
) -> tuple[int, int]:
    """Incremental load, one statement: the x__deleted rows delete their matches, the live
    rows upsert. Returns (upserted, deleted by x__deleted rows). ``rows`` has one row per
    ``match_on`` value, so the deleted and the upserted keys are disjoint.

    ``by_key`` (connection point or grain, never empty): ``DELETE ... USING`` on equal key
    columns, and ``INSERT ... ON CONFLICT (key) DO UPDATE`` through the unique index, which
    probes the index per row whatever the table's size. Otherwise rows match on all
    attributes, which may be empty (NULL) and must still match: a live row replaces its
    matches (deleted, then inserted) and there is no index to conflict on. Attributes are
    compared as a jsonb array, equal for equal values, NULL included, and hashable, which
    ``IS NOT DISTINCT FROM`` is not (that would mean a nested loop over table x rows).
    """
    target = _table(schema, table)
    if by_key:
        match = " AND ".join(f"t.{quote_ident(k)} = b.{quote_ident(k)}" for k in match_on)
        deleting = f"b._deleted AND {match}"
        rest = [c for c in columns if c not in match_on]
        update = ", ".join(f"{quote_ident(c)} = excluded.{quote_ident(c)}" for c in rest)
        conflict = f" ON CONFLICT ({cols(match_on)}) " + (
            f"DO UPDATE SET {update}" if rest else "DO NOTHING"
        )
    else:
        deleting = (
            f"jsonb_build_array({cols(match_on, 't')}) = jsonb_build_array({cols(match_on, 'b')})"
        )
        conflict = ""
    row = await conn.fetchrow(
        f"WITH b AS MATERIALIZED (SELECT * FROM {rows.sql} AS r),"
        f" gone AS (DELETE FROM {target} AS t USING b WHERE {deleting} RETURNING b._deleted),"
        f" put AS (INSERT INTO {target} ({cols(columns)})"
        f"  SELECT {cols(columns)} FROM b WHERE NOT b._deleted{conflict})"
        " SELECT (SELECT count(*) FROM b WHERE NOT b._deleted) AS upserted,"
        " (SELECT count(*) FILTER (WHERE _deleted) FROM gone) AS deleted",
        *rows.params,
    )
    assert row is not None
    return int(row["upserted"]), int(row["deleted"])
