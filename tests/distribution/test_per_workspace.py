"""The seed's rules that are per workspace, on real servers: a bad row fails only its client's
workspace, unknown client ids are unknown to the data product, three failures are three
successive timestamps, a lone workspace catches up through every newer file of the run's
listing, and a file added during a run waits for the next one."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from tests.conftest import User, eventually
from tests.distribution.test_distribution import Product, dist_api, product, rows, ts

__all__ = ["dist_api", "product"]

HEADER = "cp__product_id,a__name,f__price\n"
ROUTED = "x__client_id,cp__product_id,a__name,f__price\n"


async def start(product: Product) -> str:
    started = await product.api.post(
        f"/data-products/{product.name}/runs", headers=product.user.headers
    )
    assert started.status_code == 202, started.text
    return str(started.json()["run_id"])


async def finished(product: Product, run_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        got = await product.api.get(f"/runs/{run_id}", headers=product.user.headers)
        run: dict[str, Any] = got.json()
        return run if run["status"] != "running" else None

    return await eventually(done, within=120)


async def run(product: Product) -> dict[str, Any]:
    return await finished(product, await start(product))


async def state(product: Product, client: str) -> dict[str, Any]:
    found: dict[str, Any] = (await product.workspaces())[client]["datasets"]["products"]
    return found


async def break_prices(db: asyncpg.Connection, schema: str) -> None:
    await db.execute(
        f'ALTER TABLE "{schema}".products ALTER COLUMN f__price TYPE boolean USING false'
    )


async def mend_prices(db: asyncpg.Connection, schema: str) -> None:
    await db.execute(f'ALTER TABLE "{schema}".products ALTER COLUMN f__price TYPE numeric USING 0')


async def test_a_bad_row_for_one_client_fails_only_that_workspace(
    product: Product, warehouse: asyncpg.Connection
) -> None:
    # The seed's Workspace 1 / Workspace 2: Workspace 2 fails on its own data, Workspace 1 loads.
    await product.create(["w1", "w2"])
    name = f"products_{ts('0101')}_inc.csv"
    product.put(name, ROUTED + "w1,1,one,1\nw2,2,two,2\nw2,3,three,abc\nw1,4,four,4\n")
    result = await run(product)
    assert result["status"] == "partially_failed", result
    by_client = {r["client_id"]: r for r in result["results"]}
    assert by_client["w1"]["status"] == "succeeded"
    assert by_client["w1"]["rows_upserted"] == 2
    assert by_client["w2"]["status"] == "failed"
    assert by_client["w2"]["reason"] == (
        f"exports/{name} line 4, column 'f__price': invalid input syntax for type numeric: \"abc\""
    )
    assert not [p for p in result["problems"] if "unknown" in p]
    assert (await state(product, "w1"))["lsts"] == ts("0101")
    assert (await state(product, "w2"))["lsts"] is None
    w1 = (await product.workspaces())["w1"]["schema"]
    assert [r[:2] for r in await rows(warehouse, w1)] == [(1, "one"), (4, "four")]

    # Next run: Workspace 2 retries the same file and fails again; Workspace 1 has nothing new.
    again = await run(product)
    assert [(r["client_id"], r["status"]) for r in again["results"]] == [("w2", "failed")]


async def test_rows_of_a_workspace_loading_another_file_are_not_unknown(
    product: Product, warehouse: asyncpg.Connection
) -> None:
    await product.create(["w1", "w2"])
    product.put(f"products_{ts('0201')}_inc.csv", ROUTED + "w1,1,a,1\nw2,1,a,1\n")
    assert (await run(product))["status"] == "succeeded"
    w2 = (await product.workspaces())["w2"]["schema"]
    await break_prices(warehouse, w2)
    product.put(f"products_{ts('0202')}_inc.csv", ROUTED + "w1,2,b,2\nw2,2,b,2\n")
    assert (await run(product))["status"] == "partially_failed"
    await mend_prices(warehouse, w2)
    # A catch-up run: w1 loads T3 alone while w2 retries T2, then loads T3 too.
    product.put(f"products_{ts('0203')}_inc.csv", ROUTED + "w1,3,c,3\nw2,3,c,3\nzz,9,z,9\n")
    result = await run(product)
    assert result["status"] == "succeeded", result
    loaded = sorted((r["client_id"], r["timestamp"]) for r in result["results"])
    assert loaded == [("w1", ts("0203")), ("w2", ts("0202")), ("w2", ts("0203"))]
    unknown = [p for p in result["problems"] if "unknown client ids" in p]
    assert unknown == [
        f"exports/products_{ts('0203')}_inc.csv: rows for unknown client ids zz were not loaded"
    ]
    assert [r[0] for r in await rows(warehouse, w2)] == [1, 2, 3]


async def test_three_failures_are_three_successive_timestamps(
    product: Product, warehouse: asyncpg.Connection
) -> None:
    await product.create(["w1"])
    product.put(f"products_{ts('0301')}_inc.csv", HEADER + "0,t0,0\n")
    assert (await run(product))["status"] == "succeeded"
    w1 = (await product.workspaces())["w1"]["schema"]
    await break_prices(warehouse, w1)
    product.put(f"products_{ts('0302')}_inc.csv", HEADER + "1,t1,1\n")
    for _ in range(3):  # retries of one file, with no newer file: one failure
        result = await run(product)
        assert [(r["timestamp"], r["status"]) for r in result["results"]] == [
            (ts("0302"), "failed")
        ]
    assert (await state(product, "w1"))["failure_streak"] == 1
    product.put(f"products_{ts('0303')}_inc.csv", HEADER + "2,t2,2\n")
    await run(product)  # T1 retried again, against a newer timestamp: the second failure
    assert (await state(product, "w1"))["failure_streak"] == 2
    await run(product)
    assert (await state(product, "w1"))["failure_streak"] == 2
    product.put(f"products_{ts('0304')}_inc.csv", HEADER + "3,t3,3\n")
    await run(product)
    loaded = await state(product, "w1")
    assert (loaded["failure_streak"], loaded["needs_recovery"]) == (3, True)
    product.put(f"products_{ts('0305')}_inc.csv", HEADER + "4,t4,4\n")
    assert (await run(product))["results"] == []  # T4 is not loaded: manual recovery


async def test_a_lone_workspace_catches_up_through_every_newer_file(
    product: Product, warehouse: asyncpg.Connection, stack_db: str
) -> None:
    await product.create(["w1"])
    product.put(f"products_{ts('0401')}_inc.csv", HEADER + "0,t0,0\n")
    assert (await run(product))["status"] == "succeeded"
    w1 = (await product.workspaces())["w1"]["schema"]
    await break_prices(warehouse, w1)
    product.put(f"products_{ts('0402')}_inc.csv", HEADER + "1,t1,1\n")
    assert (await run(product))["status"] == "failed"
    await mend_prices(warehouse, w1)
    product.put(f"products_{ts('0403')}_inc.csv", HEADER + "2,t2,2\n")
    product.put(f"products_{ts('0404')}_inc.csv", HEADER + "3,t3,3\n")

    # Hold the workspace's table so the retry cannot finish before a file is added mid-run.
    blocker = await asyncpg.connect(stack_db)
    tx = blocker.transaction()
    await tx.start()
    try:
        await blocker.execute(f'LOCK TABLE "{w1}".products IN ACCESS EXCLUSIVE MODE')
        run_id = await start(product)  # the listing is taken here
        # Added during the run: one within the files it catches up through, one newer.
        product.put(f"products_{ts('0403', '180000')}_inc.csv", HEADER + "8,mid,8\n")
        product.put(f"products_{ts('0405')}_inc.csv", HEADER + "4,late,4\n")

        async def waiting() -> bool:
            return bool(
                await blocker.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE relation = $1::regclass AND NOT granted",
                    f'"{w1}".products',
                )
            )

        await eventually(waiting, within=120)
    finally:
        await tx.rollback()
        await blocker.close()
    result = await finished(product, run_id)
    assert result["status"] == "succeeded", result
    assert [(r["timestamp"], r["status"]) for r in result["results"]] == [
        (ts(day), "succeeded") for day in ("0402", "0403", "0404")
    ]
    assert (await state(product, "w1"))["lsts"] == ts("0404")
    assert [r[0] for r in await rows(warehouse, w1)] == [0, 1, 2, 3]
    later = await run(product)  # the file added during the last run
    assert [r["timestamp"] for r in later["results"]] == [ts("0405")]


async def test_a_workspace_table_failure_names_the_table(
    product: Product, warehouse: asyncpg.Connection, dist_api: httpx.AsyncClient, alice: User
) -> None:
    await product.create(["w1"])
    product.put(f"products_{ts('0501')}_inc.csv", HEADER + "1,a,1\n")
    assert (await run(product))["status"] == "succeeded"
    w1 = (await product.workspaces())["w1"]["schema"]
    await warehouse.execute(
        f'ALTER TABLE "{w1}".products ADD CONSTRAINT cheap CHECK (f__price < 100)'
    )
    product.put(f"products_{ts('0502')}_inc.csv", HEADER + "2,b,2\n3,c,300\n")
    result = await run(product)
    (failed,) = result["results"]
    assert failed["status"] == "failed"
    assert failed["reason"].startswith(f'{w1}.products: new row for relation "products"')
    assert "cheap" in failed["reason"]
    assert "line" not in failed["reason"] and ".csv" not in failed["reason"]


async def test_the_seed_s_delete_table_with_null_literals_loads_in_a_run(
    product: Product, warehouse: asyncpg.Connection
) -> None:
    columns = [
        {"name": "cp__invoice_id", "type": "integer"},
        {"name": "r__customer", "type": "integer"},
        {"name": "f__totalprice", "type": "numeric"},
    ]
    await product.create(["w1"], columns, dataset="invoices")
    header = "cp__invoice_id,r__customer,f__totalprice,x__deleted\n"
    product.put(f"invoices_{ts('0601')}_inc.csv", header + "1013,7,9.5,FALSE\n1014,8,1,FALSE\n")
    assert (await run(product))["status"] == "succeeded"
    product.put(f"invoices_{ts('0602')}_inc.csv", header + "1013,NULL,NULL,TRUE\n")
    result = await run(product)
    assert result["status"] == "succeeded", result
    (loaded,) = result["results"]
    assert (loaded["rows_upserted"], loaded["rows_deleted"]) == (0, 1)
    w1 = (await product.workspaces())["w1"]["schema"]
    assert [r[0] for r in await rows(warehouse, w1, "invoices")] == [1014]
