"""All SQL of a workspace load's staging (see staging.py and loads.py for the semantics).

Staging tables are session-local (``TEMP ... ON COMMIT DROP``, never WAL-logged):

- the typed staging of the source file: its rows in file order (``_line``), LIST-partitioned
  by ``x__client_id`` so that each workspace reads only the partition of its client id; rows
  of no target (and of a file without ``x__client_id``) go to the default partition;
- for a file without ``x__client_id``, whose every row goes to every workspace: the *batch*,
  built once (one row per key, the file's last), which every workspace reads whole;
- the all-``text`` staging of a file that a typed COPY refused, checked value by value.

A workspace's rows are then a subquery over the staging (one row per key, the file's last,
sorted in memory per workspace) or the batch: `Rows`, which store.py writes into the
workspace's table. Identifiers come from the contract's patterns and are quoted again here;
values are ``$n`` parameters, except the client ids of partition bounds (quoted literals).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import asyncpg

from loadbay_loader.warehouse.tabular import SQL_TYPES
from loadbay_platform.db import quote_ident

CLIENT_ID = "x__client_id"
DELETED = "x__deleted"
LINE = "_line"  # staging only: the row's position in the file (parts in the request's order)
TEMP = '"pg_temp"'
# COPY into a partitioned table keeps a buffer of rows per partition, for at most 32 of them
# (MAX_PARTITION_BUFFERS): with more, rows spread over many clients flush tiny batches. So at
# most 31 partitions plus the default; beyond 31 targets a partition holds several client ids,
# and with more than a few per partition an index on the client id finds a workspace's rows.
MAX_PARTITIONS = 31
MAX_UNINDEXED_CLIENTS = 4  # client ids per partition read by a filtered scan


@dataclass(frozen=True)
class StagingColumn:
    name: str
    type: str  # a key of SQL_TYPES
    not_null: bool = False


@dataclass(frozen=True)
class Rows:
    """One workspace's rows: a FROM item with the dataset's columns and ``_deleted``
    (and ``$1``, the client id, if ``params`` has it)."""

    sql: str
    params: tuple[str, ...] = ()


def cols(names: Sequence[str], alias: str | None = None) -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + quote_ident(n) for n in names)


def count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _temp(table: str) -> str:
    return f"{TEMP}.{quote_ident(table)}"


def partition_groups(client_ids: Sequence[str]) -> list[list[str]]:
    """The target client ids, spread over at most MAX_PARTITIONS partitions."""
    ids = sorted(set(client_ids))
    n = min(len(ids), MAX_PARTITIONS)
    return [ids[i::n] for i in range(n)]


async def create_staging(
    conn: asyncpg.Connection,
    table: str,
    columns: Sequence[StagingColumn],
    *,
    partitions: Sequence[Sequence[str]] = (),
) -> None:
    """``partitions``: groups of client ids, a LIST partition each, and the default one.
    (``bigserial``, not an identity column: PostgreSQL < 17 refuses those on partitions.)
    The client id is the first column: a workspace's scan of its partition tests it in every
    row, and reading it does not step over the variable-length columns (~25% of the scan)."""
    ordered = sorted(columns, key=lambda c: c.name != CLIENT_ID)  # stable: the rest in order
    body = ", ".join(
        f"{quote_ident(c.name)} {SQL_TYPES[c.type]}{' NOT NULL' if c.not_null else ''}"
        for c in ordered
    )
    parent = f"CREATE TEMP TABLE {quote_ident(table)} ({LINE} bigserial, {body})"
    if not partitions:
        await conn.execute(f"{parent} ON COMMIT DROP")
        return
    statements = [f"{parent} PARTITION BY LIST ({CLIENT_ID}) ON COMMIT DROP"]
    for i, group in enumerate(partitions):
        statements.append(
            f"CREATE TEMP TABLE {quote_ident(f'{table}_p{i}')} PARTITION OF {_temp(table)}"
            f" FOR VALUES IN ({', '.join(_literal(c) for c in group)})"
        )
    statements.append(
        f"CREATE TEMP TABLE {quote_ident(f'{table}_default')} PARTITION OF {_temp(table)} DEFAULT"
    )
    await conn.execute("; ".join(statements))  # one round trip


async def index_clients(
    conn: asyncpg.Connection, table: str, partitions: Sequence[Sequence[str]]
) -> None:
    """After the COPY: an index on the client id where a partition holds many client ids."""
    if any(len(group) > MAX_UNINDEXED_CLIENTS for group in partitions):
        await conn.execute(f"CREATE INDEX ON {_temp(table)} ({CLIENT_ID})")


async def add_staging_column(conn: asyncpg.Connection, table: str, name: str) -> None:
    """A column the file has but the dataset does not (loaded as text, then ignored)."""
    await conn.execute(
        f"ALTER TABLE {_temp(table)} ADD COLUMN IF NOT EXISTS {quote_ident(name)} text"
    )


def _select(
    source: str,
    columns: Sequence[str],
    key: Sequence[str],
    text_columns: Collection[str],
    where: str,
) -> str:
    """The rows of ``source`` with ``_deleted`` resolved (empty = false); with a ``key``, one
    row per key, the file's last: within a file the last row wins (an upsert after a delete
    re-inserts, a delete after an upsert deletes). Text keys sort byte-wise (COLLATE "C"):
    only equality matters, the same in every deterministic collation, and a locale's
    comparisons make the sort far slower."""
    body = f"{cols(columns)}, coalesce({DELETED}, false) AS _deleted"
    if not key:
        return f"SELECT {body} FROM {source} WHERE {where}"
    order = ", ".join(
        f'{quote_ident(k)} COLLATE "C"' if k in text_columns else quote_ident(k) for k in key
    )
    return (
        f"SELECT DISTINCT ON ({order}) {body} FROM {source} WHERE {where}"
        f" ORDER BY {order}, {LINE} DESC"
    )


def client_rows(
    staging: str,
    columns: Sequence[str],
    key: Sequence[str],
    *,
    text_columns: Collection[str],
    client_id: str,
) -> Rows:
    """A workspace's rows of a file with ``x__client_id``: read from its client id's
    partition and sorted per workspace (with ``key``, see `_select`)."""
    select = _select(_temp(staging), columns, key, text_columns, f"{CLIENT_ID} = $1")
    return Rows(f"({select})", (client_id,))


async def build_batch(
    conn: asyncpg.Connection,
    staging: str,
    batch: str,
    columns: Sequence[str],
    key: Sequence[str],
    *,
    text_columns: Collection[str],
) -> Rows:
    """For a file without ``x__client_id``: every workspace's rows, built once."""
    select = _select(_temp(staging), columns, key, text_columns, "true")
    await conn.execute(f"CREATE TEMP TABLE {quote_ident(batch)} ON COMMIT DROP AS {select}")
    # Autovacuum never analyzes temporary tables: without this the planner guesses.
    await conn.execute(f"ANALYZE {_temp(batch)}")
    return Rows(_temp(batch))


async def clients_with_rows(
    conn: asyncpg.Connection, staging: str, client_ids: Sequence[str]
) -> set[str]:
    """The client ids that have rows: a look for one row each in its partition (LIMIT 1 keeps
    it a nested loop, where a semi-join would read the whole staging)."""
    rows = await conn.fetch(
        f"SELECT c FROM unnest($1::text[]) AS c,"
        f" LATERAL (SELECT FROM {_temp(staging)} AS s WHERE s.{CLIENT_ID} = c LIMIT 1) AS one",
        list(client_ids),
    )
    return {r["c"] for r in rows}


async def unknown_client_ids(
    conn: asyncpg.Connection, staging: str, client_ids: Sequence[str], limit: int
) -> tuple[list[str], int]:
    """Up to `limit` client ids of the file that no target has (sorted), and how many
    there are in all. (They are in the default partition, which is all this reads.)"""
    where = f"{CLIENT_ID} IS NOT NULL AND {CLIENT_ID} <> ALL($1::text[])"
    rows = await conn.fetch(
        f"SELECT DISTINCT {CLIENT_ID} AS client_id FROM {_temp(staging)} WHERE {where}"
        " ORDER BY 1 LIMIT $2",
        list(client_ids),
        limit + 1,
    )
    found = [r["client_id"] for r in rows]
    if len(found) <= limit:
        return found, len(found)
    total = await conn.fetchval(
        f"SELECT count(DISTINCT {CLIENT_ID}) FROM {_temp(staging)} WHERE {where}",
        list(client_ids),
    )
    return found[:limit], int(total)


async def rows_without_client_id(conn: asyncpg.Connection, staging: str) -> int:
    return int(
        await conn.fetchval(f"SELECT count(*) FROM {_temp(staging)} WHERE {CLIENT_ID} IS NULL")
    )


async def drop_temp(conn: asyncpg.Connection, *tables: str) -> None:
    """Free the staging space now rather than at commit."""
    for table in tables:
        await conn.execute(f"DROP TABLE IF EXISTS {_temp(table)}")


# --------------------------------------------------------------------------- re-checking rows
# A file whose typed COPY failed on a value is staged again as text (every column ``text``)
# and checked here value by value, so that a bad row fails only its own client's workspace.
# Checks are StagingColumns: the declared type, and ``not_null`` for a key column.


@dataclass(frozen=True)
class BadRow:
    client_id: str | None
    line: int  # the staging _line
    column: StagingColumn
    value: str | None
    message: str | None  # PostgreSQL's, as COPY would say it; None: an empty key value


def _valid(c: StagingColumn) -> str:
    col, type_ = quote_ident(c.name), SQL_TYPES[c.type]
    if c.type == "text":
        return f"({col} IS NOT NULL)" if c.not_null else "true"
    if c.not_null:
        return f"({_convert(c, checked=False)} IS NOT NULL AND pg_input_is_valid({col}, '{type_}'))"
    return f"({col} IS NULL OR {col} IN ('', 'NULL') OR pg_input_is_valid({col}, '{type_}'))"


def _convert(c: StagingColumn, *, checked: bool = True) -> str:
    """The value as its type (``checked``: known valid), or as text, NULL for NULL/empty."""
    col = quote_ident(c.name)
    if c.type == "text":
        return col
    return f"nullif(nullif({col}, ''), 'NULL')" + (f"::{SQL_TYPES[c.type]}" if checked else "")


async def first_bad_rows(
    conn: asyncpg.Connection,
    raw: str,
    checks: Sequence[StagingColumn],
    *,
    routed: bool,
    client_ids: Sequence[str],
) -> list[BadRow]:
    """The first invalid row of each target client id (routed), or of the file."""
    checked = [c for c in checks if _valid(c) != "true"]
    if not checked:
        return []
    bad = [f"WHEN NOT {_valid(c)} THEN" for c in checked]
    which = " ".join(f"{w} {i}" for i, w in enumerate(bad))
    value = " ".join(f"{w} {quote_ident(c.name)}" for w, c in zip(bad, checked, strict=True))
    message = " ".join(  # none for an empty key value
        f"{w} CASE WHEN {_convert(c, checked=False)} IS NOT NULL THEN"
        f" (pg_input_error_info({quote_ident(c.name)}, '{SQL_TYPES[c.type]}')).message END"
        for w, c in zip(bad, checked, strict=True)
        if c.type != "text"
    )
    select = (
        f"{LINE} AS line, CASE {which} END AS i, CASE {value} END AS value,"
        f" CASE {message or 'WHEN false THEN NULL'} END AS message"
    )
    # Without x__client_id, every row's client id is NULL: one group, the file's first bad row.
    rows = await conn.fetch(
        f"SELECT DISTINCT ON ({CLIENT_ID}) {CLIENT_ID} AS client_id, {select}"
        f" FROM {_temp(raw)} WHERE (NOT $2 OR {CLIENT_ID} = ANY($1::text[]))"
        f" AND NOT ({' AND '.join(_valid(c) for c in checked)}) ORDER BY {CLIENT_ID}, {LINE}",
        list(client_ids),
        routed,
    )
    return [
        BadRow(r["client_id"], r["line"], checked[r["i"]], r["value"], r["message"]) for r in rows
    ]


async def copy_valid_rows(
    conn: asyncpg.Connection, raw: str, staging: str, checks: Sequence[StagingColumn]
) -> int:
    """Copy the valid rows of ``raw`` into the typed ``staging``, converted, in file order
    (``_line`` kept); in a non-text column, ``NULL`` and an empty value are NULL."""
    names, valid = [c.name for c in checks], " AND ".join(_valid(c) for c in checks) or "true"
    return count(
        await conn.execute(
            f"INSERT INTO {_temp(staging)} ({LINE}, {cols(names)})"
            f" SELECT {LINE}, {', '.join(_convert(c) for c in checks)}"
            f" FROM {_temp(raw)} WHERE {valid} ORDER BY {LINE}"
        )
    )
