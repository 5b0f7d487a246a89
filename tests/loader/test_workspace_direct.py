"""Full loads straight into the workspaces' tables (workspace/direct.py), against the stack's
PostgreSQL: a plain file goes direct, and whatever it cannot do exactly as the staging path
would, the staging path does, with the same results."""

from __future__ import annotations

import gzip
import logging
from collections.abc import Callable
from decimal import Decimal

import asyncpg
import pytest

from tests.loader.test_workspace_loads import csv, load, ok, request, rows_of, target

HEADER = "cp__invoice_id,r__customer,f__totalprice,x__client_id,x__deleted"
HANDED_OVER = "takes the staging path"


@pytest.fixture
def handovers(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """The reasons direct loads were handed to the staging path so far."""
    caplog.set_level(logging.INFO, logger="loadbay_loader.workspace.direct")
    return lambda: [r.getMessage() for r in caplog.records if HANDED_OVER in r.getMessage()]


def quoted(data: bytes) -> bytes:
    """The same file with every field quoted: not routable by bytes, so the staging path."""
    return b"".join(
        b",".join(b'"' + f + b'"' if f else f for f in line.split(b",")) + b"\n"
        for line in data.splitlines()
    )


async def test_a_plain_full_load_goes_direct_with_the_staging_path_s_results(
    pool: asyncpg.Pool, handovers: Callable[[], list[str]]
) -> None:
    data = csv(
        HEADER,
        "1,1,1.5,acme,false",
        "2,2,2,beta,",
        "3,3,,acme,f",
        "4,4,4,ghost,false",
        "5,5,5,,false",
    )
    loads = []
    for body in (data, quoted(data)):
        targets = (target("acme", "full"), target("beta", "full"), target("idle", "full"))
        done = await load(pool, request(("a.csv",), targets), {"a.csv": body})
        tables = [await rows_of(pool, t.schema_name, "invoices") for t in targets[:2]]
        loads.append((done, targets, tables))
        async with pool.acquire() as conn:  # a workspace without rows is not touched
            assert not await conn.fetchval(
                "SELECT count(*) FROM pg_namespace WHERE nspname = $1", targets[2].schema_name
            )
    (direct, targets, tables), (staged, _, staged_tables) = loads
    assert direct.results == (ok(targets[0], 2), ok(targets[1], 1), ok(targets[2]))
    assert [r.model_dump(exclude={"workspace_id"}) for r in direct.results] == [
        r.model_dump(exclude={"workspace_id"}) for r in staged.results
    ]
    assert direct.unknown_client_ids == staged.unknown_client_ids == ("ghost",)
    assert (
        tables
        == staged_tables
        == [
            [(1, 1, Decimal("1.5")), (3, 3, None)],
            [(2, 2, Decimal(2))],
        ]
    )
    assert [("quote" in m) for m in handovers()] == [True]


async def test_a_full_reload_of_existing_tables_goes_direct_and_counts_what_it_deleted(
    pool: asyncpg.Pool, handovers: Callable[[], list[str]]
) -> None:
    acme, beta = target("acme", "full"), target("beta", "full")
    first = csv(HEADER, "1,1,1,acme,", "2,2,2,acme,", "3,3,3,beta,")
    await load(pool, request(("a.csv",), (acme, beta)), {"a.csv": first})
    second = gzip.compress(csv(HEADER, "7,7,7,acme,false"))
    part = csv(HEADER, "8,8,8,acme,false", "9,9,9,beta,false")
    done = await load(
        pool, request(("b.csv.gz", "b2.csv"), (acme, beta)), {"b.csv.gz": second, "b2.csv": part}
    )
    assert done.results == (ok(acme, 2, deleted=2), ok(beta, 1, deleted=1))
    assert await rows_of(pool, acme.schema_name, "invoices") == [
        (7, 7, Decimal(7)),
        (8, 8, Decimal(8)),
    ]
    assert await rows_of(pool, beta.schema_name, "invoices") == [(9, 9, Decimal(9))]
    assert handovers() == []


async def test_a_repeated_key_is_handed_over_and_the_file_s_last_row_wins(
    pool: asyncpg.Pool, handovers: Callable[[], list[str]]
) -> None:
    acme, beta = target("acme", "full"), target("beta", "full")
    data = csv(HEADER, "1,1,1,acme,", "2,2,2,beta,", "1,1,10,acme,", "1,1,11,acme,")
    done = await load(pool, request(("a.csv",), (acme, beta)), {"a.csv": data})
    assert done.results == (ok(acme, 1), ok(beta, 1))
    assert await rows_of(pool, acme.schema_name, "invoices") == [(1, 1, Decimal(11))]
    assert [("repeated key" in m) for m in handovers()] == [True]


async def test_keys_bytes_cannot_tell_apart_are_checked_by_postgresql(
    pool: asyncpg.Pool, handovers: Callable[[], list[str]]
) -> None:
    acme, beta = target("acme", "full"), target("beta", "full")
    # beta's 007 and 7 are one key: PostgreSQL tells, and the staging path keeps the last.
    data = csv(HEADER, "007,1,1,acme,", "8,2,2,acme,", "007,3,3,beta,", "7,4,4,beta,")
    done = await load(pool, request(("a.csv",), (acme, beta)), {"a.csv": data})
    assert done.results == (ok(acme, 2), ok(beta, 1))
    assert await rows_of(pool, beta.schema_name, "invoices") == [(7, 4, Decimal(4))]
    assert [("repeated key in 1 workspace" in m) for m in handovers()] == [True]

    # Spelled oddly but unique: loaded directly.
    data = csv(HEADER, "007,1,1,acme,", "8,2,2,acme,", "+9,3,3,beta,")
    done = await load(pool, request(("b.csv",), (acme, beta)), {"b.csv": data})
    assert done.results == (ok(acme, 2, deleted=2), ok(beta, 1, deleted=1))
    assert len(handovers()) == 1


async def test_a_bad_value_or_an_empty_key_fails_only_its_workspace(
    pool: asyncpg.Pool, handovers: Callable[[], list[str]]
) -> None:
    acme, beta, gamma = target("acme", "full"), target("beta", "full"), target("gamma", "full")
    data = csv(HEADER, "1,1,1,acme,", "2,2,two,beta,", "3,3,3,acme,", ",4,4,gamma,")
    done = await load(pool, request(("a.csv",), (acme, beta, gamma)), {"a.csv": data})
    assert done.results[0] == ok(acme, 2)
    assert [r.status for r in done.results] == ["succeeded", "failed", "failed"]
    assert done.results[1].reason == (
        "a.csv line 3, column 'f__totalprice': invalid input syntax for type numeric: \"two\""
    )
    assert (done.results[2].reason or "").startswith("a.csv line 5, column 'cp__invoice_id'")
    assert await rows_of(pool, acme.schema_name, "invoices") == [
        (1, 1, Decimal(1)),
        (3, 3, Decimal(3)),
    ]
    assert len(handovers()) == 1


async def test_a_table_another_owns_fails_only_its_workspace(
    pool: asyncpg.Pool, handovers: Callable[[], list[str]]
) -> None:
    mine, theirs = target("mine", "full"), target("theirs", "full")
    async with pool.acquire() as conn:
        await conn.execute(
            f'CREATE SCHEMA "{theirs.schema_name}"; CREATE TABLE "{theirs.schema_name}".invoices'
            " (cp__invoice_id integer, r__customer integer, f__totalprice numeric);"
            f' INSERT INTO "{theirs.schema_name}".invoices VALUES (7, 7, 7)'
        )
        await conn.execute(
            "INSERT INTO warehouse_tables (schema_name, table_name, owner_kind, owner_id)"
            " VALUES ($1, 'invoices', 'dataset', 'some-dataset')",
            theirs.schema_name,
        )
    data = csv(HEADER, "1,1,1,mine,", "2,2,2,theirs,")
    done = await load(pool, request(("a.csv",), (mine, theirs)), {"a.csv": data})
    assert done.results[0] == ok(mine, 1)
    assert done.results[1].status == "failed"
    assert "belongs to a reload dataset" in (done.results[1].reason or "")
    assert await rows_of(pool, theirs.schema_name, "invoices") == [(7, 7, Decimal(7))]
    assert len(handovers()) == 1
