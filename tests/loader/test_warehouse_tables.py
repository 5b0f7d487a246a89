"""The loader's registry of warehouse tables: who each table was created for, the claims a
load makes before writing, and the adoption of tables made before the registry."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from loadbay_loader import repository
from loadbay_platform.db import migrate


async def claim(pool: asyncpg.Pool, table: str, kind: str, owner: str, adopt: bool = False) -> str:
    async with pool.acquire() as conn:
        return await repository.claim_table(
            conn, "claims", table, kind=kind, owner=owner, adopt_unregistered=adopt
        )


async def test_claims_register_pass_for_the_owner_and_refuse_everyone_else(
    pool: asyncpg.Pool,
) -> None:
    assert await claim(pool, "orders", "dataset", "ds-1") == "registered"
    assert await claim(pool, "orders", "dataset", "ds-1") == "owned"
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="belongs to another dataset"):
        await claim(pool, "orders", "dataset", "ds-2")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="belongs to a reload dataset"):
        await claim(pool, "orders", "workspace", "claims", adopt=True)
    # The dataset is deleted: the next dataset of that name adopts its table.
    async with pool.acquire() as conn:
        await repository.release_dataset_tables(conn, "ds-1")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await claim(pool, "orders", "workspace", "claims", adopt=True)
    assert await claim(pool, "orders", "dataset", "ds-2") == "adopted"
    assert await claim(pool, "orders", "dataset", "ds-2") == "owned"


async def test_an_unregistered_table_is_refused_to_a_dataset_and_adopted_by_a_workspace(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "CREATE SCHEMA IF NOT EXISTS claims; CREATE TABLE claims.by_hand (a int)"
        )
    with pytest.raises(
        asyncpg.InsufficientPrivilegeError,
        match=r"claims\.by_hand exists but loadbay did not create it for this dataset",
    ) as refused:
        await claim(pool, "by_hand", "dataset", "ds-1")
    assert refused.value.hint == "drop or rename that table, or choose another domain or name"
    assert await claim(pool, "by_hand", "workspace", "claims", adopt=True) == "registered"
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="belongs to a client workspace"):
        await claim(pool, "by_hand", "dataset", "ds-1")


async def test_the_migration_registers_the_reload_tables_of_the_ledger(
    pool: asyncpg.Pool,
) -> None:
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        await conn.execute(
            "CREATE SCHEMA IF NOT EXISTS sales; CREATE TABLE sales.orders (id int);"
            " CREATE SCHEMA IF NOT EXISTS ws_shop_acme; CREATE TABLE ws_shop_acme.products (id int)"
        )
        for load_id, dataset, target, status, at in [
            ("l1", "ds-old", "sales.orders", "succeeded", now.replace(year=2020)),
            ("l2", "ds-new", "sales.orders", "succeeded", now),
            ("l3", "ds-failed", "sales.orders", "failed", now.replace(year=2030)),
            ("l4", "ds-gone", "sales.gone", "succeeded", now),  # its table was dropped
            ("l5", "ds-attack", "ws_shop_acme.products", "succeeded", now),
        ]:
            await repository.record_load(
                conn, load_id=load_id, request_type="reload.requested", dataset_id=dataset,
                target=target, status=status, files=1, rows=1, bytes_=1, error=None,
                started_at=at, finished_at=at,
            )  # fmt: skip
        # As before the registry existed: run its migration again.
        await conn.execute(
            "DROP FUNCTION claim_warehouse_table; DROP TABLE warehouse_tables;"
            " DELETE FROM schema_migrations WHERE name = '0009_warehouse_tables.sql'"
        )
        assert await migrate(conn, "loadbay_loader", "loadbay_loader") == [
            "0009_warehouse_tables.sql"
        ]
        registered = await conn.fetch(
            "SELECT schema_name, table_name, owner_kind, owner_id FROM warehouse_tables"
            " WHERE schema_name IN ('sales', 'ws_shop_acme') ORDER BY 1, 2"
        )
    # The dataset whose reload last succeeded owns its table; a reload domain in a ws_ schema
    # (possible before ws_ was reserved) keeps no claim there, so the workspace adopts it.
    assert [tuple(r) for r in registered] == [("sales", "orders", "dataset", "ds-new")]
    assert await claim(pool, "x", "dataset", "d") == "registered"  # the function is back
