"""Every way a file lands becomes one pending file; anything unmatched is dead-lettered."""

from __future__ import annotations

import json
from typing import Any

import httpx

from loadbay_contracts import Envelope, FileLanded
from tests.conftest import Platform, User, eventually
from tests.reload.flows import (
    batch_prefix,
    create_dataset,
    dead_letters,
    files,
    finished_execution,
    publish,
    publish_event,
)

CSV = b"id,name,amount,day\n1,a,1,2024-01-01\n"


async def test_a_producer_file_landed_delivered_twice_is_one_pending_file(
    platform: Platform,
    reload_api: httpx.AsyncClient,
    alice: User,
    names: tuple[str, str],
    s3: Any,
) -> None:
    domain, name = names
    await create_dataset(reload_api, alice, domain, name)
    # An upstream ETL job writes to a prefix the watcher also sees, and announces the file
    # itself, twice (at-least-once delivery): still one pending file.
    key = batch_prefix(domain, name, alice) + "from_etl.csv"
    put = s3.put_object(Bucket=platform.settings.s3.lz_bucket, Key=key, Body=CSV)
    event = FileLanded(
        bucket=platform.settings.s3.lz_bucket,
        key=key,
        size=len(CSV),
        etag=put["ETag"].strip('"'),
        source="producer",
    )
    envelope = Envelope.wrap(event, source="etl/orders-job")
    bootstrap = platform.settings.kafka.bootstrap_servers
    await publish_event(bootstrap, envelope, event)
    await publish_event(bootstrap, Envelope.wrap(event, source="etl/orders-job"), event)

    async def one_pending() -> list[dict[str, Any]]:
        return await files(reload_api, alice, domain, name, "pending")

    pending = await eventually(one_pending)
    await publish_event(bootstrap, envelope, event)  # the very same event again
    assert len(await files(reload_api, alice, domain, name)) == 1
    assert pending[0]["key"] == key


async def test_a_late_file_landed_for_a_deleted_object_makes_no_pending_file(
    platform: Platform,
    reload_api: httpx.AsyncClient,
    alice: User,
    names: tuple[str, str],
    s3: Any,
) -> None:
    # The bucket watcher's event for a file uploaded and deleted within one watch interval
    # arrives after the delete: the object is gone, so the file must not come back as pending.
    domain, name = names
    await create_dataset(reload_api, alice, domain, name)
    lz = platform.settings.s3.lz_bucket
    prefix = batch_prefix(domain, name, alice)
    gone = FileLanded(bucket=lz, key=prefix + "deleted.csv", size=3, etag="e", source="watcher")
    put = s3.put_object(Bucket=lz, Key=prefix + "kept.csv", Body=CSV)
    kept = FileLanded(
        bucket=lz, key=prefix + "kept.csv", size=len(CSV), etag=put["ETag"].strip('"')
    )
    bootstrap = platform.settings.kafka.bootstrap_servers
    # Same dataset, same partition: `kept` is handled after `gone`.
    await publish_event(bootstrap, Envelope.wrap(gone, source="loadbay/reload"), gone)
    await publish_event(bootstrap, Envelope.wrap(kept, source="etl/orders-job"), kept)

    async def kept_is_pending() -> list[dict[str, Any]]:
        return await files(reload_api, alice, domain, name, "pending")

    assert [f["name"] for f in await eventually(kept_is_pending)] == ["kept.csv"]
    assert [f["name"] for f in await files(reload_api, alice, domain, name)] == ["kept.csv"]


async def test_an_s3_event_notification_lands_the_file_and_its_success_marker_reloads(
    platform: Platform,
    reload_api: httpx.AsyncClient,
    alice: User,
    names: tuple[str, str],
    s3: Any,
) -> None:
    domain, name = names
    await create_dataset(reload_api, alice, domain, name)
    lz = platform.settings.s3.lz_bucket
    prefix = batch_prefix(domain, name, alice, 42)
    records = []
    for file_name, body in (("n1.csv", CSV), ("_SUCCESS", b"")):
        put = s3.put_object(Bucket=lz, Key=prefix + file_name, Body=body)
        records.append(
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "eventTime": "2026-11-21T10:00:00.000Z",
                "s3": {
                    "bucket": {"name": lz},
                    "object": {
                        "key": (prefix + file_name).replace("=", "%3D"),
                        "size": len(body),
                        "eTag": put["ETag"].strip('"'),
                    },
                },
            }
        )
    await publish(
        platform.settings.kafka.bootstrap_servers,
        "loadbay.s3.notifications",
        json.dumps({"Records": records}).encode(),
    )
    execution = await finished_execution(reload_api, alice, domain, name)
    assert execution["status"] == "succeeded" and execution["rows"] == 1
    assert execution["files"] == [prefix + "n1.csv"]


async def test_unmatched_landings_are_dead_lettered_with_the_reason(
    platform: Platform,
    reload_api: httpx.AsyncClient,
    alice: User,
    bob: User,
    names: tuple[str, str],
) -> None:
    domain, name = names
    await create_dataset(reload_api, alice, domain, name)
    lz = platform.settings.s3.lz_bucket
    cases = {
        f"{domain}/no_such_{name}/upload_date=1/{alice.user_id}/csv/x.csv": "no dataset",
        f"{domain}/{name}/not-a-date/{alice.user_id}/csv/x.csv": "malformed landing path",
        f"{domain}/{name}/upload_date=1/{alice.user_id}/json/x.json": "file type folder",
        f"{domain}/{name}/upload_date=1/{bob.user_id}/csv/x.csv": "not authorized",
    }
    bootstrap = platform.settings.kafka.bootstrap_servers
    for key in cases:
        event = FileLanded(bucket=lz, key=key, size=1, etag="e")
        await publish_event(bootstrap, Envelope.wrap(event, source="test"), event)

    async def all_dead() -> list[dict[str, Any]]:
        found = await dead_letters(bootstrap, "loadbay.file.landed", domain)
        return found if len(found) >= len(cases) else []

    found = await eventually(all_dead, within=30)
    reasons = {d["value"]["data"]["key"]: d["headers"]["loadbay-error"] for d in found}
    for key, expected in cases.items():
        assert expected in reasons[key], (key, reasons[key])
    assert await files(reload_api, alice, domain, name) == []
