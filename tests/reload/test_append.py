"""Append datasets: each file's rows are added once; skip-LZ landings go straight in."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from loadbay_contracts import Envelope, FileLanded
from tests.conftest import Platform, User, eventually
from tests.reload.flows import (
    batch_prefix,
    create_dataset,
    dead_letters,
    files,
    finished_execution,
    land,
    publish_event,
)

ROW_A = b"id,name,amount,day\n1,a,1,2024-01-01\n"
ROW_B = b"id,name,amount,day\n2,b,2,2024-01-02\n"


async def test_an_append_dataset_adds_each_file_once(
    platform: Platform, reload_api: httpx.AsyncClient, alice: User, names: tuple[str, str],
    s3: Any, warehouse: asyncpg.Connection,
) -> None:  # fmt: skip
    domain, name = names
    await create_dataset(reload_api, alice, domain, name, dataset_type="append")
    lz = platform.settings.s3.lz_bucket
    land(s3, lz, batch_prefix(domain, name, alice, 1), {"same.csv": ROW_A})
    await finished_execution(reload_api, alice, domain, name)
    land(s3, lz, batch_prefix(domain, name, alice, 2), {"same.csv": ROW_B})
    execution = await finished_execution(reload_api, alice, domain, name, count=2)
    assert execution["status"] == "succeeded"
    ids = [
        r["id"] for r in await warehouse.fetch(f'SELECT id FROM "{domain}"."{name}" ORDER BY id')
    ]
    assert ids == [1, 2]
    nothing = await reload_api.post(
        f"/datasets/{domain}/{name}/process", json={}, headers=alice.headers
    )
    assert nothing.status_code == 409  # completed files are never loaded again

    async def dlz_keys() -> list[str]:
        listing = s3.list_objects_v2(
            Bucket=platform.settings.s3.dlz_bucket, Prefix=f"{domain}/{name}/"
        )
        keys = [o["Key"] for o in listing.get("Contents", [])]
        return keys if len(keys) == 2 else []

    assert len(await eventually(dlz_keys)) == 2  # both files of one name are kept


async def test_skip_lz_landings_load_straight_from_the_dlz_into_append_datasets_only(
    platform: Platform, reload_api: httpx.AsyncClient, alice: User, names: tuple[str, str],
    s3: Any, warehouse: asyncpg.Connection,
) -> None:  # fmt: skip
    domain, name = names
    await create_dataset(reload_api, alice, domain, name, dataset_type="append")
    dlz = platform.settings.s3.dlz_bucket
    prefix = batch_prefix(domain, name, alice, 7)
    put = s3.put_object(Bucket=dlz, Key=prefix + "direct.csv", Body=ROW_A)
    bootstrap = platform.settings.kafka.bootstrap_servers
    for key, size, etag in (
        (prefix + "direct.csv", len(ROW_A), put["ETag"].strip('"')),
        (prefix + "_SUCCESS", 0, ""),
    ):
        event = FileLanded(bucket=dlz, key=key, size=size, etag=etag, source="ingestion")
        await publish_event(bootstrap, Envelope.wrap(event, source="ingestion"), event)
    execution = await finished_execution(reload_api, alice, domain, name)
    assert execution["status"] == "succeeded" and execution["rows"] == 1
    assert [f["status"] for f in await files(reload_api, alice, domain, name)] == ["completed"]

    reload_name = name + "_r"
    await create_dataset(reload_api, alice, domain, reload_name)
    key = batch_prefix(domain, reload_name, alice, 8) + "x.csv"
    event = FileLanded(bucket=dlz, key=key, size=1, etag="e", source="ingestion")
    await publish_event(bootstrap, Envelope.wrap(event, source="ingestion"), event)

    async def refused() -> list[dict[str, Any]]:
        return await dead_letters(bootstrap, "loadbay.file.landed", reload_name)

    (dead,) = await eventually(refused, within=30)
    assert "only into Append datasets" in dead["headers"]["loadbay-error"]
