"""Bindings respect dataset ownership (known from the reload service's dataset events), a
deleted dataset disables its bindings, and connection names are per owner (no leaks)."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from tests.conftest import User, eventually
from tests.ingestion.conftest import (
    IngestionApi,
    Remote,
    bind_dataset,
    create_connection,
    finished_run,
    new_dataset,
    unique,
)
from tests.reload.flows import create_dataset


async def test_only_the_owner_and_authorized_users_of_a_dataset_bind_it(
    api: IngestionApi, alice: User, bob: User, remote: Remote,
    settings_for_users: list[User],
) -> None:  # fmt: skip
    (carol,) = settings_for_users
    domain, name = unique("dom"), unique("ds")
    carol_as_user = {"user_id": carol.user_id, "email": carol.email}
    await create_dataset(api.reload, alice, domain, name, authorized_users=[carol_as_user])
    dataset = f"{domain}/{name}"
    bobs = await create_connection(api, bob, remote, remote.bucket())
    alices = await create_connection(api, alice, remote, remote.bucket())
    await bind_dataset(api, alice, alices["name"], dataset, expect=201)  # seen by now
    await api.delete(f"/bindings/{dataset}", headers=alice.headers)
    # Someone else's dataset answers exactly as one that does not exist.
    refused = await bind_dataset(api, bob, bobs["name"], dataset, expect=422, seen=True)
    unknown = await bind_dataset(api, bob, bobs["name"], "nope/nothing_here", expect=422,
                                 seen=True)  # fmt: skip
    assert refused.json()["message"] == f"no dataset {dataset} (create it first; if you just did,"\
        " retry in a moment)"  # fmt: skip
    assert unknown.json()["message"] == refused.json()["message"].replace(
        dataset, "nope/nothing_here"
    )
    # So bob blocks nobody: alice binds her dataset; an authorized user may bind it too.
    await bind_dataset(api, alice, alices["name"], dataset)
    await api.delete(f"/bindings/{dataset}", headers=alice.headers)
    carols = await create_connection(api, carol, remote, remote.bucket())
    made = await bind_dataset(api, carol, carols["name"], dataset)
    assert made.json()["dataset_type"] == "reload"  # taken from the dataset
    # Nor does an authorized user block the owner: she may unbind it from any connection.
    taken = await bind_dataset(api, alice, alices["name"], dataset, expect=409)
    assert "the dataset's owner may always unbind it" in taken.json()["message"]
    assert (await api.get(f"/bindings/{dataset}", headers=alice.headers)).status_code == 404
    unbound = await api.delete(f"/bindings/{dataset}", headers=alice.headers)
    assert unbound.status_code == 204
    await bind_dataset(api, alice, alices["name"], dataset)
    assert (await api.delete(f"/bindings/{dataset}", headers=bob.headers)).status_code == 404


async def test_a_binding_must_suit_the_dataset(
    api: IngestionApi, alice: User, remote: Remote
) -> None:
    connection = (await create_connection(api, alice, remote, remote.bucket()))["name"]
    reload_ds = await new_dataset(api, alice, "reload")
    append_ds = await new_dataset(api, alice, "append")
    skip_lz = await bind_dataset(api, alice, connection, reload_ds, dataset_type="append",
                                 expect=422)  # fmt: skip
    assert "is a Reload dataset" in skip_lz.json()["message"]
    assert "skip-LZ" in skip_lz.json()["message"]
    wrong = await bind_dataset(api, alice, connection, append_ds, dataset_type="reload",
                               expect=422)  # fmt: skip
    assert "is an Append dataset" in wrong.json()["message"]
    json_files = await bind_dataset(api, alice, connection, reload_ds, file_type="json",
                                    expect=422)  # fmt: skip
    assert "takes csv files" in json_files.json()["message"]
    made = await bind_dataset(api, alice, connection, append_ds)
    assert made.json()["dataset_type"] == "append"


async def binding(api: httpx.AsyncClient, user: User, dataset: str) -> dict[str, Any]:
    shown = await api.get(f"/bindings/{dataset}", headers=user.headers)
    assert shown.status_code == 200, shown.text
    return shown.json()  # type: ignore[no-any-return]


async def test_a_deleted_dataset_disables_its_bindings_and_runs_fail_with_the_reason(
    api: IngestionApi, alice: User, bob: User, remote: Remote, db: asyncpg.Pool
) -> None:
    bucket = remote.bucket()
    remote.s3.put_object(Bucket=bucket, Key="exports/in/a.csv", Body=b"id\n1\n")
    connection = (await create_connection(api, alice, remote, bucket))["name"]
    dataset = await new_dataset(api, alice)
    await bind_dataset(api, alice, connection, dataset)
    scheduled = await api.put(f"/bindings/{dataset}/schedule", json={"cron": "0 0 1 1 *"},
                              headers=alice.headers)  # fmt: skip
    assert scheduled.status_code == 200
    deleted = await api.reload.delete(f"/datasets/{dataset}", headers=alice.headers)
    assert deleted.status_code == 204

    async def disabled() -> dict[str, Any] | None:
        found = await binding(api, alice, dataset)
        return found if not found["enabled"] else None

    view = await eventually(disabled)
    assert f"dataset {dataset} was deleted" in view["disabled_reason"]
    started = await api.post(f"/bindings/{dataset}/runs", headers=alice.headers)
    assert started.status_code == 409 and "was deleted" in started.json()["message"]
    # Its schedule fires once more (made due here), fails with the reason, and ends.
    async with db.acquire() as conn:
        await conn.execute("UPDATE schedules SET next_run_at = now() WHERE binding_id = (SELECT"
                           " id FROM bindings WHERE dataset = $1)", dataset)  # fmt: skip

    async def failed_run() -> list[dict[str, Any]]:
        runs = await api.get(f"/bindings/{dataset}/runs", headers=alice.headers)
        return [r for r in runs.json() if r["status"] in ("failed", "succeeded")]

    (run,) = await eventually(failed_run)
    run = await finished_run(api, alice, run["id"])
    assert run["status"] == "failed" and "was deleted" in run["reason"], run
    assert run["copied"] == []
    assert (await binding(api, alice, dataset))["schedule"] is None
    # The name is free again: a new dataset of that name (bob's now) is bound anew.
    domain, name = dataset.split("/")
    await create_dataset(api.reload, bob, domain, name)
    bobs = (await create_connection(api, bob, remote, bucket))["name"]
    await bind_dataset(api, bob, bobs, dataset)
    assert (await binding(api, bob, dataset))["enabled"] is True
    assert (await binding(api, alice, dataset))["enabled"] is False  # hers, kept for history
    # A disabled binding does not keep its connection from being deleted.
    assert (
        await api.delete(f"/connections/{connection}", headers=alice.headers)
    ).status_code == 204
    assert (await binding(api, bob, dataset))["enabled"] is True


async def test_connection_names_are_per_owner_and_resolve_to_the_callers_own_first(
    api: IngestionApi, alice: User, bob: User, remote: Remote, settings_for_users: list[User]
) -> None:
    (carol,) = settings_for_users
    name = unique("shared")
    alices = await create_connection(api, alice, remote, remote.bucket(), name=name,
                                     authorized_users=[bob.user_id, carol.user_id])  # fmt: skip
    bobs = await create_connection(api, bob, remote, remote.bucket(), name=name)
    assert alices["bucket"] != bobs["bucket"]

    async def bucket_seen_by(user: User) -> str:
        shown = await api.get(f"/connections/{name}", headers=user.headers)
        assert shown.status_code == 200, shown.text
        return str(shown.json()["bucket"])

    assert await bucket_seen_by(bob) == bobs["bucket"]  # his own first
    assert await bucket_seen_by(carol) == alices["bucket"]  # the one shared with her
    assert await bucket_seen_by(alice) == alices["bucket"]
    listed = (await api.get("/connections", headers=bob.headers)).json()
    assert sorted(c["owner_id"] for c in listed if c["name"] == name) == sorted(
        [alice.user_id, bob.user_id]
    )
    # Changes go to the caller's own connection only.
    patched = await api.patch(f"/connections/{name}", json={"description": "bob's"},
                              headers=bob.headers)  # fmt: skip
    assert patched.status_code == 200 and patched.json()["owner_id"] == bob.user_id
    assert (await api.get(f"/connections/{name}", headers=alice.headers)).json()[
        "description"
    ] == ""
