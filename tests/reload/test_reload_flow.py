"""The reload flow end to end on real servers: landing, _SUCCESS, Process Files, atomic
replace, validation errors, one reload at a time, DLZ copies, executions and emails."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from typing import Any

import asyncpg
import httpx

from loadbay_contracts import Envelope, FileLanded
from tests.conftest import DATA, Mailbox, Platform, User, body_text, eventually
from tests.reload.flows import (
    batch_prefix,
    create_dataset,
    executions,
    files,
    finished_execution,
    land,
    publish_event,
)

ORDERS_1 = b"id,name,amount,day\n1,apple,1.50,2024-01-02\n2,pear,,2024-01-03\n"
ORDERS_2 = b'id,name,amount,day\n3,"fig, dried",3,2024-01-04\n4,kiwi,4.25,2024-01-05\n'


async def rows(conn: asyncpg.Connection, domain: str, name: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await conn.fetch(f'SELECT * FROM "{domain}"."{name}" ORDER BY id')]


async def test_success_file_reloads_the_batch_and_emails_the_user(
    platform: Platform,
    reload_api: httpx.AsyncClient,
    alice: User,
    names: tuple[str, str],
    s3: Any,
    warehouse: asyncpg.Connection,
    mail: Mailbox,
) -> None:
    domain, name = names
    await create_dataset(reload_api, alice, domain, name)
    prefix = batch_prefix(domain, name, alice)
    land(s3, platform.settings.s3.lz_bucket, prefix, {"a.csv": ORDERS_1, "b.csv": ORDERS_2})

    execution = await finished_execution(reload_api, alice, domain, name)

    assert execution["status"] == "succeeded", execution
    assert execution["trigger"] == "success-file"
    assert execution["triggered_by"] == alice.user_id
    assert execution["rows"] == 4
    assert execution["bytes"] == len(ORDERS_1) + len(ORDERS_2)
    assert sorted(execution["files"]) == [prefix + "a.csv", prefix + "b.csv"]
    assert execution["finished_at"] is not None
    assert await rows(warehouse, domain, name) == [
        (1, "apple", Decimal("1.50"), dt.date(2024, 1, 2)),
        (2, "pear", None, dt.date(2024, 1, 3)),
        (3, "fig, dried", Decimal("3"), dt.date(2024, 1, 4)),
        (4, "kiwi", Decimal("4.25"), dt.date(2024, 1, 5)),
    ]
    assert {f["status"] for f in await files(reload_api, alice, domain, name)} == {"completed"}

    async def dlz_keys() -> list[str]:
        listing = s3.list_objects_v2(
            Bucket=platform.settings.s3.dlz_bucket, Prefix=f"{domain}/{name}/"
        )
        return sorted(o["Key"] for o in listing.get("Contents", []))

    # The DLZ copy follows the commit (see loadbay_loader.reload.dlz); _SUCCESS never reaches it.
    assert await eventually(dlz_keys) == [f"{domain}/{name}/a.csv", f"{domain}/{name}/b.csv"]
    (email,) = await mail.wait_for(alice.email)
    assert "succeeded" in email["Subject"].lower()
    assert f"{domain}/{name}" in body_text(email)

    detail = await reload_api.get(f"/executions/{execution['id']}", headers=alice.headers)
    assert detail.json()["id"] == execution["id"]


async def test_a_bad_value_fails_the_reload_and_leaves_the_dataset_as_it_was(
    platform: Platform,
    reload_api: httpx.AsyncClient,
    alice: User,
    names: tuple[str, str],
    s3: Any,
    warehouse: asyncpg.Connection,
    mail: Mailbox,
) -> None:
    domain, name = names
    await create_dataset(reload_api, alice, domain, name)
    lz = platform.settings.s3.lz_bucket
    land(s3, lz, batch_prefix(domain, name, alice, 1), {"good.csv": ORDERS_1})
    assert (await finished_execution(reload_api, alice, domain, name))["status"] == "succeeded"
    before = await rows(warehouse, domain, name)

    bad = b"id,name,amount,day\n7,ok,1,2024-02-01\n8,bad,12,2024-02-30\n"
    second = batch_prefix(domain, name, alice, 2)
    land(s3, lz, second, {"fine.csv": ORDERS_2, "broken.csv": bad})
    execution = await finished_execution(reload_api, alice, domain, name, count=2)

    assert execution["status"] == "failed"
    reason = execution["reason"]
    assert "broken.csv" in reason and "line 3" in reason and "day" in reason, reason
    assert "2024-02-30" in reason
    assert execution["error"]["line"] == 3
    assert execution["error"]["column"] == "day"
    assert execution["error"]["value"] == "2024-02-30"
    assert await rows(warehouse, domain, name) == before
    pending = await files(reload_api, alice, domain, name, "pending")
    by_name = {f["name"]: f for f in pending}
    assert set(by_name) == {"fine.csv", "broken.csv"}
    assert "2024-02-30" in by_name["broken.csv"]["error"]
    assert "broken.csv" in by_name["fine.csv"]["error"]
    emails = await mail.wait_for(alice.email, count=2)
    failed = [m for m in emails if "failed" in m["Subject"].lower()]
    assert len(failed) == 1 and "2024-02-30" in body_text(failed[0])


async def test_process_files_loads_exactly_the_chosen_uploaded_files(
    platform: Platform,
    reload_api: httpx.AsyncClient,
    alice: User,
    names: tuple[str, str],
    warehouse: asyncpg.Connection,
) -> None:
    domain, name = names
    await create_dataset(reload_api, alice, domain, name)
    response = await reload_api.post(
        f"/datasets/{domain}/{name}/files",
        files=[("files", ("one.csv", ORDERS_1)), ("files", ("two.csv", ORDERS_2))],
        headers=alice.headers,
    )
    assert response.status_code == 201, response.text
    uploaded = {f["name"]: f for f in response.json()}
    assert {f["status"] for f in uploaded.values()} == {"pending"}
    assert all(f"/{alice.user_id}/csv/" in f["key"] for f in uploaded.values())

    chosen = uploaded["two.csv"]["id"]
    started = await reload_api.post(
        f"/datasets/{domain}/{name}/process", json={"file_ids": [chosen]}, headers=alice.headers
    )
    assert started.status_code == 202, started.text
    execution = await finished_execution(reload_api, alice, domain, name)
    assert execution["status"] == "succeeded" and execution["trigger"] == "api"
    assert [r[0] for r in await rows(warehouse, domain, name)] == [3, 4]
    status = {f["name"]: f["status"] for f in await files(reload_api, alice, domain, name)}
    assert status == {"one.csv": "pending", "two.csv": "completed"}

    # A reload replaces: processing the other file leaves only its rows.
    await reload_api.post(f"/datasets/{domain}/{name}/process", json={}, headers=alice.headers)
    await finished_execution(reload_api, alice, domain, name, count=2)
    assert [r[0] for r in await rows(warehouse, domain, name)] == [1, 2]


async def test_one_reload_at_a_time(
    platform: Platform,
    reload_api: httpx.AsyncClient,
    alice: User,
    names: tuple[str, str],
    s3: Any,
    stack_db: str,
    mail: Mailbox,
) -> None:
    domain, name = names
    await create_dataset(reload_api, alice, domain, name)
    lz = platform.settings.s3.lz_bucket
    land(s3, lz, batch_prefix(domain, name, alice, 1), {"a.csv": ORDERS_1})
    await finished_execution(reload_api, alice, domain, name)

    # Hold a lock on the dataset's table: the next reload cannot swap in until we let go, so
    # it stays running for as long as this test needs.
    blocker = await asyncpg.connect(stack_db)
    transaction = blocker.transaction()
    await transaction.start()
    await blocker.execute(f'LOCK TABLE "{domain}"."{name}" IN ACCESS SHARE MODE')
    try:
        upload = await reload_api.post(
            f"/datasets/{domain}/{name}/files",
            files=[("files", ("b.csv", ORDERS_2))],
            headers=alice.headers,
        )
        file_id = upload.json()[0]["id"]
        first = await reload_api.post(
            f"/datasets/{domain}/{name}/process",
            json={"file_ids": [file_id]},
            headers=alice.headers,
        )
        assert first.status_code == 202
        other = await reload_api.post(
            f"/datasets/{domain}/{name}/files",
            files=[("files", ("c.csv", ORDERS_2))],
            headers=alice.headers,
        )
        second = await reload_api.post(
            f"/datasets/{domain}/{name}/process",
            json={"file_ids": [other.json()[0]["id"]]},
            headers=alice.headers,
        )
        assert second.status_code == 409
        assert "running" in second.json()["message"]
        status = {f["id"]: f["status"] for f in await files(reload_api, alice, domain, name)}
        assert status[file_id] == "processing"
        busy = await reload_api.post(
            f"/datasets/{domain}/{name}/files/delete",
            json={"file_ids": [file_id]},
            headers=alice.headers,
        )
        assert busy.status_code == 409 and "(processing)" in busy.json()["message"]

        land(s3, lz, batch_prefix(domain, name, alice, 3), {"d.csv": ORDERS_1})
        rejected = await mail.wait_for(alice.email, count=2)
        assert any("not started" in m["Subject"].lower() for m in rejected)
        # The same marker announced again (a producer after the watcher): told once only.
        marker = batch_prefix(domain, name, alice, 3) + "_SUCCESS"
        head = s3.head_object(Bucket=lz, Key=marker)
        event = FileLanded(bucket=lz, key=marker, size=0, etag=head["ETag"].strip('"'))
        bootstrap = platform.settings.kafka.bootstrap_servers
        await publish_event(bootstrap, Envelope.wrap(event, source="test"), event)
        await publish_event(bootstrap, Envelope.wrap(event, source="test"), event)
        await asyncio.sleep(3)
        assert len(mail.messages_to(alice.email)) == 2
        pending = {f["name"] for f in await files(reload_api, alice, domain, name, "pending")}
        assert {"c.csv", "d.csv"} <= pending
        assert len(await executions(reload_api, alice, domain, name)) == 2
    finally:
        await transaction.rollback()
        await blocker.close()
    execution = await finished_execution(reload_api, alice, domain, name, count=2)
    assert execution["status"] == "succeeded"


async def test_delete_pending_files_removes_them_from_the_lz_and_the_registry(
    platform: Platform,
    reload_api: httpx.AsyncClient,
    alice: User,
    names: tuple[str, str],
    s3: Any,
) -> None:
    domain, name = names
    await create_dataset(reload_api, alice, domain, name)
    lz = platform.settings.s3.lz_bucket
    land(s3, lz, batch_prefix(domain, name, alice, 1), {"keep.csv": ORDERS_1})
    await finished_execution(reload_api, alice, domain, name)
    upload = await reload_api.post(
        f"/datasets/{domain}/{name}/files",
        files=[("files", ("unwanted.csv", ORDERS_2))],
        headers=alice.headers,
    )
    unwanted = upload.json()[0]
    completed = (await files(reload_api, alice, domain, name, "completed"))[0]

    refused = await reload_api.post(
        f"/datasets/{domain}/{name}/files/delete",
        json={"file_ids": [completed["id"]]},
        headers=alice.headers,
    )
    assert refused.status_code == 409
    assert "keep.csv (completed)" in refused.json()["message"]

    deleted = await reload_api.post(
        f"/datasets/{domain}/{name}/files/delete",
        json={"file_ids": [unwanted["id"]]},
        headers=alice.headers,
    )
    assert deleted.status_code == 200, deleted.text
    remaining = [f["name"] for f in await files(reload_api, alice, domain, name)]
    assert remaining == ["keep.csv"]
    listing = s3.list_objects_v2(Bucket=lz, Prefix=unwanted["key"])
    assert listing.get("KeyCount", 0) == 0


async def test_auth_and_authorization(
    reload_api: httpx.AsyncClient, alice: User, bob: User, names: tuple[str, str]
) -> None:
    domain, name = names
    assert (await reload_api.get("/datasets")).status_code == 401
    bad = await reload_api.get("/datasets", headers={"Authorization": "Bearer nonsense"})
    assert bad.status_code == 401
    await create_dataset(reload_api, alice, domain, name)

    hidden = await reload_api.get(f"/datasets/{domain}/{name}", headers=bob.headers)
    assert hidden.status_code == 404
    assert all(
        d["name"] != name for d in (await reload_api.get("/datasets", headers=bob.headers)).json()
    )
    refused = await reload_api.post(
        f"/datasets/{domain}/{name}/process", json={}, headers=bob.headers
    )
    assert refused.status_code == 404

    shared_name = name + "_shared"
    await create_dataset(
        reload_api,
        alice,
        domain,
        shared_name,
        authorized_users=[{"user_id": bob.user_id, "email": bob.email}],
    )
    assert (
        await reload_api.get(f"/datasets/{domain}/{shared_name}", headers=bob.headers)
    ).status_code == 200
    not_owner = await reload_api.delete(f"/datasets/{domain}/{shared_name}", headers=bob.headers)
    assert not_owner.status_code == 403
    assert (
        await reload_api.delete(f"/datasets/{domain}/{shared_name}", headers=alice.headers)
    ).status_code == 204


async def test_bad_dataset_requests_are_refused_with_a_reason(
    reload_api: httpx.AsyncClient, alice: User, names: tuple[str, str]
) -> None:
    domain, name = names
    wrong_type = await reload_api.post(
        "/datasets",
        json={"domain": domain, "name": name, "columns": [{"name": "a", "type": "money"}]},
        headers=alice.headers,
    )
    assert wrong_type.status_code == 422 and "money" in wrong_type.text
    reserved = await reload_api.post(
        "/datasets",
        json={"domain": "loadbay_reload", "name": name, "columns": [{"name": "a", "type": "text"}]},
        headers=alice.headers,
    )
    assert reserved.status_code == 409 and "services' own schemas" in reserved.text
    await create_dataset(reload_api, alice, domain, name)
    again = await reload_api.post(
        "/datasets",
        json={"domain": domain, "name": name, "columns": [{"name": "a", "type": "text"}]},
        headers=alice.headers,
    )
    assert again.status_code == 409 and "exists" in again.json()["message"]
    nothing = await reload_api.post(
        f"/datasets/{domain}/{name}/process", json={}, headers=alice.headers
    )
    assert nothing.status_code == 409 and "no pending files" in nothing.json()["message"]


USGS_COLUMNS = [
    {"name": "time", "type": "timestamptz", "nullable": False},
    {"name": "latitude", "type": "numeric"},
    {"name": "longitude", "type": "numeric"},
    {"name": "depth", "type": "numeric"},
    {"name": "mag", "type": "numeric"},
    {"name": "magtype", "type": "text"},
    {"name": "nst", "type": "integer"},
    {"name": "gap", "type": "numeric"},
    {"name": "dmin", "type": "numeric"},
    {"name": "rms", "type": "numeric"},
    {"name": "net", "type": "text"},
    {"name": "id", "type": "text", "nullable": False},
    {"name": "updated", "type": "timestamptz"},
    {"name": "place", "type": "text"},
    {"name": "type", "type": "text"},
]


async def test_the_usgs_earthquakes_file_loads_as_a_real_dataset(
    platform: Platform,
    reload_api: httpx.AsyncClient,
    alice: User,
    names: tuple[str, str],
    warehouse: asyncpg.Connection,
) -> None:
    domain, name = names
    await create_dataset(reload_api, alice, domain, name, columns=USGS_COLUMNS)
    data = (DATA / "usgs-earthquakes-2015-11-22_2015-12-22.csv").read_bytes()
    uploaded = await reload_api.post(
        f"/datasets/{domain}/{name}/files",
        files=[("files", ("earthquakes.csv", data))],
        headers=alice.headers,
    )
    assert uploaded.status_code == 201, uploaded.text
    await reload_api.post(f"/datasets/{domain}/{name}/process", json={}, headers=alice.headers)
    execution = await finished_execution(reload_api, alice, domain, name)
    assert execution["status"] == "succeeded", execution["reason"]
    assert execution["rows"] == 7268
    table = f'"{domain}"."{name}"'
    assert await warehouse.fetchval(f"SELECT count(DISTINCT id) FROM {table}") == 7268
    first = await warehouse.fetchrow(f"SELECT * FROM {table} WHERE id = 'ak12293661'")
    assert first["time"] == dt.datetime(2015, 12, 22, 18, 45, 11, tzinfo=dt.UTC)
    assert first["place"] == "54km S of Redoubt Volcano, Alaska"
    assert first["nst"] is None and first["mag"] == Decimal("3")


async def test_the_user_who_ran_it_and_the_owner_both_get_the_email(
    reload_api: httpx.AsyncClient,
    alice: User,
    bob: User,
    names: tuple[str, str],
    mail: Mailbox,
) -> None:
    domain, name = names
    await create_dataset(
        reload_api,
        alice,
        domain,
        name,
        authorized_users=[{"user_id": bob.user_id, "email": bob.email}],
    )
    await reload_api.post(
        f"/datasets/{domain}/{name}/files",
        files=[("files", ("by_bob.csv", ORDERS_1))],
        headers=bob.headers,
    )
    started = await reload_api.post(
        f"/datasets/{domain}/{name}/process", json={}, headers=bob.headers
    )
    assert started.status_code == 202, started.text
    execution = await finished_execution(reload_api, bob, domain, name)
    assert execution["triggered_by"] == bob.user_id
    (to_bob,) = await mail.wait_for(bob.email)
    (to_alice,) = await mail.wait_for(alice.email)
    assert to_bob["Message-ID"] == to_alice["Message-ID"]  # one email, both recipients
