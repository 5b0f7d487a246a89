"""Migrations: applied once, in order, recorded, and a second run changes nothing."""

from __future__ import annotations

import asyncpg

from loadbay_platform.db import migrate
from tests.conftest import StackInfo


async def test_migrations_apply_once_and_record_themselves(stack: StackInfo) -> None:
    conn = await asyncpg.connect(stack.postgres_url)
    try:
        await conn.execute("DROP SCHEMA IF EXISTS loadbay_migration_check CASCADE")
        first = await migrate(conn, "loadbay_migration_check", "loadbay_reload")
        again = await migrate(conn, "loadbay_migration_check", "loadbay_reload")
        tables = {
            r["table_name"]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = 'loadbay_migration_check'"
            )
        }
        recorded = await conn.fetchval(
            "SELECT array_agg(name ORDER BY name) FROM loadbay_migration_check.schema_migrations"
        )
    finally:
        await conn.execute("DROP SCHEMA IF EXISTS loadbay_migration_check CASCADE")
        await conn.close()
    assert first == [
        "0000_platform.sql",
        "0000_platform_work_queue.sql",
        "0001_reload.sql",
        "0002_append_datasets.sql",
        "0003_rejected_markers.sql",
    ]
    assert again == []
    assert recorded == first
    assert {
        "outbox",
        "inbox",
        "work_queue",
        "datasets",
        "files",
        "executions",
        "schema_migrations",
    } <= tables
