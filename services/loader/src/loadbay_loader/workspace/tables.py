"""A workspace's dataset table before rows go in: claimed for the workspace, created or brought
to the dataset's columns, with the key index an incremental load needs."""

from __future__ import annotations

import re

import asyncpg

from loadbay_loader.warehouse.tabular import SQL_TYPES
from loadbay_loader.workspace import store
from loadbay_loader.workspace.shape import Shape
from loadbay_loader.workspace.staging_store import StagingColumn

# Workspaces never write into PostgreSQL's own schemas or the services' (loadbay_<service>).
_RESERVED_SCHEMA = re.compile(r"^(pg_|information_schema$|loadbay_)")


# The connection is gone: the whole event is retried, not one workspace failed.
CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)


class WorkspaceFailure(Exception):
    """This workspace cannot take the load; the others can."""


def check_schema(schema: str) -> None:
    if _RESERVED_SCHEMA.match(schema):
        raise WorkspaceFailure(f"{schema}: schema name is reserved for the platform")


async def ensure_table(
    conn: asyncpg.Connection,
    schema: str,
    table: str,
    shape: Shape,
    existing: store.Existing | None,
    *,
    index: bool = False,
) -> bool:
    """Claim the table, and create it or bring it to the dataset's columns. True if it is new
    (and so empty). With ``index``, the unique index on the connection point or grain that an
    incremental load's upsert needs: a full load needs none, so a table that only full loads
    have written gets it at its first incremental load, built from its rows at once."""
    columns = [StagingColumn(n, shape.types[n]) for n in shape.columns]
    key = shape.key if shape.keyed and index else ()
    await store.claim(conn, schema, table)
    if existing is None or not existing.columns:
        await store.create_table(conn, schema, table, columns)
        if key:
            await store.add_unique_index(conn, schema, table, key)
        return True
    have = existing.columns
    wrong = [
        f"{c.name} is {have[c.name]}, the dataset declares {SQL_TYPES[c.type]}"
        for c in columns
        if c.name in have and have[c.name] != SQL_TYPES[c.type]
    ]
    if wrong:
        raise WorkspaceFailure(f"{schema}.{table}: column " + "; column ".join(wrong))
    for column in columns:
        if column.name not in have:  # the dataset gained a column
            await store.add_column(conn, schema, table, column)
    if key and not existing.key_index:
        await store.add_unique_index(conn, schema, table, key)
    return False
