"""From a remote bucket to rows and emails: ingestion, then the reload service and the loader
(Reload datasets through the LZ; Append datasets straight from the DLZ with skip-LZ, 1.8)."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from tests.conftest import Mailbox, Platform, User, body_text
from tests.ingestion.conftest import Remote, bind_dataset, create_connection, run
from tests.reload.flows import create_dataset, finished_execution

ORDERS = b"id,name,amount,day\n1,apple,1.5,2024-01-02\n2,pear,2,2024-01-03\n"
MORE = b"id,name,amount,day\n3,fig,3,2024-01-04\n"


async def bind(
    api: httpx.AsyncClient, user: User, connection: str, dataset: str, kind: str
) -> None:
    await bind_dataset(api, user, connection, dataset, dataset_type=kind)  # type: ignore[arg-type]


async def ids(db: asyncpg.Connection, domain: str, name: str) -> list[int]:
    return [r["id"] for r in await db.fetch(f'SELECT id FROM "{domain}"."{name}" ORDER BY id')]


async def test_an_ingestion_into_a_reload_dataset_reloads_it_and_emails(
    platform: Platform, reload_api: httpx.AsyncClient, api: httpx.AsyncClient, alice: User,
    remote: Remote, names: tuple[str, str], warehouse: asyncpg.Connection, mail: Mailbox,
) -> None:  # fmt: skip
    domain, name = names
    await create_dataset(reload_api, alice, domain, name)
    bucket = remote.bucket()
    remote.s3.put_object(Bucket=bucket, Key="exports/in/orders.csv", Body=ORDERS)
    connection = await create_connection(api, alice, remote, bucket, version="1.7")
    await bind(api, alice, connection["name"], f"{domain}/{name}", "reload")

    ingested = await run(api, alice, f"{domain}/{name}")
    assert ingested["status"] == "succeeded", ingested
    execution = await finished_execution(reload_api, alice, domain, name)
    assert execution["status"] == "succeeded" and execution["rows"] == 2
    assert execution["trigger"] == "success-file"
    assert await ids(warehouse, domain, name) == [1, 2]
    emails = await mail.wait_for(alice.email, count=2)
    subjects = " | ".join(m["Subject"] for m in emails)
    assert "Ingestion" in subjects and "Reload" in subjects, subjects
    assert any("orders.csv" in body_text(m) for m in emails)


async def test_skip_lz_appends_each_new_file_once(
    platform: Platform, reload_api: httpx.AsyncClient, api: httpx.AsyncClient, alice: User,
    remote: Remote, names: tuple[str, str], warehouse: asyncpg.Connection, s3: Any,
) -> None:  # fmt: skip
    domain, name = names
    await create_dataset(reload_api, alice, domain, name, dataset_type="append")
    bucket = remote.bucket()
    remote.s3.put_object(Bucket=bucket, Key="exports/in/first.csv", Body=ORDERS)
    connection = await create_connection(api, alice, remote, bucket, version="1.8")
    await bind(api, alice, connection["name"], f"{domain}/{name}", "append")

    first = await run(api, alice, f"{domain}/{name}")
    assert first["status"] == "succeeded"
    await finished_execution(reload_api, alice, domain, name)
    lz = s3.list_objects_v2(Bucket=platform.settings.s3.lz_bucket, Prefix=f"{domain}/{name}/")
    assert lz.get("KeyCount", 0) == 0  # skip-LZ: nothing went through the landing zone
    remote.s3.put_object(Bucket=bucket, Key="exports/in/second.csv", Body=MORE)
    second = await run(api, alice, f"{domain}/{name}")
    assert second["status"] == "succeeded"
    execution = await finished_execution(reload_api, alice, domain, name, count=2)
    assert execution["status"] == "succeeded" and execution["rows"] == 1
    assert await ids(warehouse, domain, name) == [1, 2, 3]  # appended, the first file once
