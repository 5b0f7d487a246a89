"""Distribution runs end to end on real servers: the seed's examples as fixtures."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from loadbay_contracts import Envelope, FileLanded
from loadbay_distribution import scheduler
from tests.conftest import Mailbox, Platform, User, body_text, eventually
from tests.reload.flows import publish_event

NEXT_YEAR = datetime.now(UTC).year + 1
COLUMNS = [
    {"name": "cp__product_id", "type": "integer"},
    {"name": "a__name", "type": "text"},
    {"name": "f__price", "type": "numeric"},
]


def ts(month_day: str, hms: str = "120000") -> str:
    """A timestamp next year, so it is after every workspace's creation time."""
    return f"{NEXT_YEAR}{month_day}{hms}"


class Product:
    """One data product of a test, with its own source bucket."""

    def __init__(self, api: httpx.AsyncClient, user: User, s3: Any, name: str) -> None:
        self.api, self.user, self.s3, self.name = api, user, s3, name
        self.bucket = f"src-{name.replace('_', '-')}"

    async def create(self, clients: list[str], columns: list[dict[str, str]] | None = None,
                     dataset: str = "products", **dataset_extra: Any) -> None:  # fmt: skip
        self.s3.create_bucket(Bucket=self.bucket)
        made = await self.api.post(
            "/data-products",
            json={"name": self.name, "bucket": self.bucket, "prefix": "exports/"},
            headers=self.user.headers,
        )
        assert made.status_code == 201, made.text
        for client in clients:
            added = await self.api.post(
                f"/data-products/{self.name}/workspaces", json={"client_id": client},
                headers=self.user.headers,
            )  # fmt: skip
            assert added.status_code == 201, added.text
        ds = await self.api.post(
            f"/data-products/{self.name}/datasets",
            json={"name": dataset, "columns": columns or COLUMNS, **dataset_extra},
            headers=self.user.headers,
        )
        assert ds.status_code == 201, ds.text

    def put(self, name: str, body: str) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=f"exports/{name}", Body=body.encode())

    def delete(self, name: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=f"exports/{name}")

    async def run(self) -> dict[str, Any]:
        started = await self.api.post(f"/data-products/{self.name}/runs", headers=self.user.headers)
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]

        async def finished() -> dict[str, Any] | None:
            run = (await self.api.get(f"/runs/{run_id}", headers=self.user.headers)).json()
            return run if run["status"] != "running" else None

        return await eventually(finished, within=30)

    async def workspaces(self) -> dict[str, dict[str, Any]]:
        found = await self.api.get(
            f"/data-products/{self.name}/workspaces", headers=self.user.headers
        )
        return {w["client_id"]: w for w in found.json()}


@pytest.fixture
async def dist_api(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=platform.urls["distribution"], timeout=30) as client:
        yield client


@pytest.fixture
def product(dist_api: httpx.AsyncClient, alice: User, s3: Any) -> Product:
    return Product(dist_api, alice, s3, f"dp_{uuid.uuid4().hex[:8]}")


async def rows(
    db: asyncpg.Connection, schema: str, table: str = "products"
) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await db.fetch(f'SELECT * FROM "{schema}"."{table}" ORDER BY 1')]


async def test_the_products_example_loads_one_file_per_run(
    product: Product, warehouse: asyncpg.Connection
) -> None:
    await product.create(["acme"])
    files = [ts("0820"), ts("0821"), ts("0821", "130000"), ts("0821", "133000")]
    for i, t in enumerate(files, start=1):
        product.put(f"Products_{t}_inc.csv", f"cp__product_id,a__name,f__price\n{i},p{i},{i}\n")
    for expected in files[:3]:
        run = await product.run()
        assert run["status"] == "succeeded", run
        (result,) = run["results"]
        assert result["timestamp"] == expected
    assert (await product.workspaces())["acme"]["datasets"]["products"]["lsts"] == files[2]
    product.put(f"Products_{ts('0822')}_inc.csv", "cp__product_id,a__name,f__price\n9,late,9\n")
    run = await product.run()  # file 4 only; the newer file waits
    assert [r["timestamp"] for r in run["results"]] == [files[3]]
    schema = (await product.workspaces())["acme"]["schema"]
    assert [r[0] for r in await rows(warehouse, schema)] == [1, 2, 3, 4]
    assert run["results"][0]["mode"] == "inc"


async def test_a_failing_workspace_retries_and_catches_up_and_three_failures_need_recovery(
    product: Product, warehouse: asyncpg.Connection, mail: Mailbox, alice: User
) -> None:
    await product.create(["w1", "w2"])
    header = "cp__product_id,a__name,f__price\n"
    product.put(f"products_{ts('0101')}_inc.csv", header + "0,t0,0\n")
    assert (await product.run())["status"] == "succeeded"  # T0 into both (first load: full)
    w2 = (await product.workspaces())["w2"]["schema"]
    # Break w2: its price column can no longer take numbers.
    await warehouse.execute(f'ALTER TABLE "{w2}".products ALTER COLUMN f__price TYPE boolean'
                            " USING false")  # fmt: skip
    product.put(f"products_{ts('0102')}_inc.csv", header + "1,t1,1\n")
    run = await product.run()
    assert run["status"] == "partially_failed"
    states = await product.workspaces()
    assert states["w1"]["datasets"]["products"]["lsts"] == ts("0102")
    assert states["w2"]["datasets"]["products"]["lsts"] == ts("0101")

    await warehouse.execute(f'ALTER TABLE "{w2}".products ALTER COLUMN f__price TYPE numeric'
                            " USING 0")  # fmt: skip
    product.put(f"products_{ts('0103')}_inc.csv", header + "2,t2,2\n")
    product.put(f"products_{ts('0104')}_inc.csv", header + "3,t3,3\n")
    run = await product.run()
    assert run["status"] == "succeeded"
    loaded = sorted((r["client_id"], r["timestamp"]) for r in run["results"])
    assert loaded == [("w1", ts("0103")), ("w2", ts("0102")), ("w2", ts("0103"))]
    run = await product.run()
    assert sorted(r["timestamp"] for r in run["results"]) == [ts("0104")] * 2

    # Three successive failures: w2 is no longer loaded and needs manual recovery.
    await warehouse.execute(f'ALTER TABLE "{w2}".products ALTER COLUMN f__price TYPE boolean'
                            " USING false")  # fmt: skip
    for day in ("0105", "0106", "0107"):
        product.put(f"products_{ts(day)}_inc.csv", header + f"{day},x,1\n")
        await product.run()
    states = await product.workspaces()
    assert states["w2"]["datasets"]["products"]["failure_streak"] == 3
    assert states["w2"]["datasets"]["products"]["needs_recovery"] is True
    product.put(f"products_{ts('0108')}_inc.csv", header + "8,x,1\n")
    run = await product.run()
    assert [r["client_id"] for r in run["results"]] == ["w1"]
    messages = await mail.wait_for(alice.email, count=7)
    assert any("manual recovery" in body_text(m).lower() for m in messages)

    # The seed's recovery: export the missing data with a new timestamp, delete the old files.
    await warehouse.execute(f'ALTER TABLE "{w2}".products ALTER COLUMN f__price TYPE numeric'
                            " USING 0")  # fmt: skip
    for day in ("0105", "0106", "0107", "0108"):
        product.delete(f"products_{ts(day)}_inc.csv")
    product.put(f"products_{ts('0109')}_inc.csv", header + "5,x,1\n6,x,1\n7,x,1\n8,x,1\n")
    run = await product.run()
    assert ("w2", "succeeded") in [(r["client_id"], r["status"]) for r in run["results"]]
    assert (await product.workspaces())["w2"]["datasets"]["products"]["failure_streak"] == 0


async def test_client_routing_full_loads_and_deletes(
    product: Product, warehouse: asyncpg.Connection
) -> None:
    await product.create(["a", "b"])
    header = "cp__product_id,a__name,f__price,x__client_id,x__deleted\n"
    product.put(f"products_{ts('0201')}_full.csv",
                header + "1,one,1,a,false\n2,two,2,a,false\n3,gone,3,a,true\n")  # fmt: skip
    run = await product.run()
    assert run["status"] == "succeeded"
    states = await product.workspaces()
    a = states["a"]["schema"]
    assert [r[:2] for r in await rows(warehouse, a)] == [(1, "one"), (2, "two")]
    # b got no rows, but its LSTS moved with a's
    assert states["b"]["datasets"]["products"]["lsts"] == ts("0201")

    changes = "1,uno,10,a,false\n2,,,a,true\n4,four,4,a,false\n5,x,5,zz,false\n"
    product.put(f"products_{ts('0202')}_inc.csv", header + changes)
    run = await product.run()
    assert [r[:3] for r in await rows(warehouse, a)] == [(1, "uno", 10), (4, "four", 4)]
    assert any("unknown client ids zz" in p for p in run["problems"])
    result = next(r for r in run["results"] if r["client_id"] == "a")
    assert (result["rows_upserted"], result["rows_deleted"]) == (2, 1)

    product.put(f"products_{ts('0203')}_full.csv", header + "7,seven,7,a,false\n")
    await product.run()
    assert [r[0] for r in await rows(warehouse, a)] == [7]  # rewritten


async def test_bad_input_is_reported(
    product: Product, dist_api: httpx.AsyncClient, alice: User
) -> None:
    await product.create(["a"])
    unprefixed = await dist_api.post(
        f"/data-products/{product.name}/datasets",
        json={"name": "other", "columns": [{"name": "price", "type": "numeric"}]},
        headers=alice.headers,
    )
    assert unprefixed.status_code == 422
    product.put("product_list.csv", "x\n")
    product.put(f"products_{ts('0301')}_inc.csv", "cp__product_id,a__name\n1,missing price\n")
    run = await product.run()
    assert any("product_list.csv" in p and "no dataset" in p for p in run["problems"])
    (result,) = run["results"]
    assert result["status"] == "failed" and "f__price" in result["reason"]
    product.put(f"products_{ts('0302')}_inc.csv",
                "cp__product_id,a__name,f__price,x__deleted\n1,a,1,maybe\n")  # fmt: skip
    product.delete(f"products_{ts('0301')}_inc.csv")
    run = await product.run()
    reason = run["results"][0]["reason"]
    assert "x__deleted" in reason and "maybe" in reason and "line 2" in reason
    bad_client = await dist_api.post(
        f"/data-products/{product.name}/workspaces", json={"client_id": "no-dashes"},
        headers=alice.headers,
    )  # fmt: skip
    assert bad_client.status_code == 422


async def test_runs_never_overlap_and_start_from_schedules_and_landings(
    platform: Platform, product: Product, dist_api: httpx.AsyncClient, alice: User,
    stack_db: str,
) -> None:  # fmt: skip
    await product.create(["a"])
    header = "cp__product_id,a__name,f__price\n"
    product.put(f"products_{ts('0401')}_inc.csv", header + "1,a,1\n")
    await product.run()
    schema = (await product.workspaces())["a"]["schema"]
    product.put(f"products_{ts('0402')}_inc.csv", header + "2,b,2\n")
    blocker = await asyncpg.connect(stack_db)
    tx = blocker.transaction()
    await tx.start()
    await blocker.execute(f'LOCK TABLE "{schema}".products IN ACCESS EXCLUSIVE MODE')
    try:
        first = await dist_api.post(f"/data-products/{product.name}/runs", headers=alice.headers)
        assert first.status_code == 202
        second = await dist_api.post(f"/data-products/{product.name}/runs", headers=alice.headers)
        assert second.status_code == 409 and "never overlap" in second.json()["message"]
    finally:
        await tx.rollback()
        await blocker.close()

    async def runs() -> list[dict[str, Any]]:
        got = await dist_api.get(f"/data-products/{product.name}/runs", headers=alice.headers)
        return [r for r in got.json() if r["status"] != "running"]

    await eventually(lambda: _count_at_least(runs, 2))

    # A due schedule fires once, however many schedulers look at it at the same moment.
    set_ = await dist_api.put(f"/data-products/{product.name}/schedule",
                              json={"cron": "0 3 * * *"}, headers=alice.headers)  # fmt: skip
    assert set_.status_code == 200
    conn = await asyncpg.connect(stack_db)
    try:
        await conn.execute(
            "UPDATE loadbay_distribution.schedules SET next_run_at = now() - interval '1 minute'"
            " WHERE data_product_id = (SELECT id FROM loadbay_distribution.data_products"
            " WHERE name = $1)", product.name,
        )  # fmt: skip
        res = platform.running["distribution"].resources
        assert res is not None
        await asyncio.gather(*(scheduler.fire_due(res.pool, res.s3) for _ in range(3)))
        next_run = await conn.fetchval(
            "SELECT next_run_at FROM loadbay_distribution.schedules s JOIN"
            " loadbay_distribution.data_products p ON p.id = s.data_product_id WHERE p.name = $1",
            product.name,
        )
    finally:
        await conn.close()
    assert next_run > datetime.now(UTC) + timedelta(minutes=1)

    async def scheduled() -> list[dict[str, Any]]:
        got = await dist_api.get(f"/data-products/{product.name}/runs", headers=alice.headers)
        return [r for r in got.json() if r["trigger"] == "schedule"]

    assert len(await eventually(scheduled)) == 1

    key = f"exports/products_{ts('0403')}_inc.csv"
    product.put(key.removeprefix("exports/"), header + "3,c,3\n")
    event = FileLanded(bucket=product.bucket, key=key, size=1, etag="e")
    await publish_event(platform.settings.kafka.bootstrap_servers,
                        Envelope.wrap(event, source="test"), event)  # fmt: skip

    async def landed() -> list[dict[str, Any]]:
        got = await dist_api.get(f"/data-products/{product.name}/runs", headers=alice.headers)
        return [r for r in got.json() if r["trigger"] == "file-landed"]

    assert await eventually(landed)


async def _count_at_least(fetch: Any, n: int) -> bool:
    return len(await fetch()) >= n
