"""Ingestion runs on real servers: the version rules, where files land and what is announced,
failures with reasons, streaming, throttling, schedules and crash resume."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from loadbay_ingestion import scheduler
from loadbay_platform.settings import PlatformSettings
from tests.conftest import StackInfo, User, eventually
from tests.ingestion.conftest import (
    Ingestion,
    Remote,
    bind,
    create_connection,
    finished_run,
    run,
    start_run,
)
from tests.reload.flows import messages

CSV = b"id,name\n1,a\n"


def lz_keys(s3: Any, bucket: str, dataset: str) -> list[str]:
    found = s3.list_objects_v2(Bucket=bucket, Prefix=dataset + "/").get("Contents", [])
    return sorted(o["Key"] for o in found)


def names(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(o["key"] for o in objects)


async def setup(
    api: httpx.AsyncClient, user: User, remote: Remote, version: str, files: dict[str, Any],
    **bind_args: Any,
) -> tuple[str, str, str]:  # fmt: skip
    """A remote bucket holding `files` (key -> body or (body, storage class)), a connection at
    `version` and a bound dataset; returns (bucket, connection, dataset)."""
    bucket = remote.bucket()
    for key, spec in files.items():
        body, storage = spec if isinstance(spec, tuple) else (spec, "STANDARD")
        remote.s3.put_object(Bucket=bucket, Key=key, Body=body, StorageClass=storage)
    connection = (await create_connection(api, user, remote, bucket, version=version))["name"]
    return bucket, connection, await bind(api, user, connection, **bind_args)


async def test_v16_takes_the_path_and_type_and_skips_same_name_size_and_etag(
    api: httpx.AsyncClient, alice: User, remote: Remote, s3: Any, stack: StackInfo
) -> None:
    bucket, _, dataset = await setup(api, alice, remote, "1.6", {
        "exports/in/a.csv": CSV, "exports/in/b.csv": b"id,name\n2,b\n",
        "exports/in/sub/c.csv": b"id,name\n3,c\n", "exports/in/notes.txt": b"not csv",
        "exports/other/d.csv": CSV, "exports/in.csv": CSV,
    })  # fmt: skip
    first = await run(api, alice, dataset)
    assert first["status"] == "succeeded", first
    assert names(first["copied"]) == ["exports/in/a.csv", "exports/in/b.csv",
                                      "exports/in/sub/c.csv"]  # fmt: skip
    folder = f"{dataset}/upload_date={first['upload_date']}/{alice.user_id}/csv/"
    assert lz_keys(s3, stack.lz_bucket, dataset) == [
        folder + n for n in ("_SUCCESS", "a.csv", "b.csv", "sub__c.csv")
    ]
    assert s3.get_object(Bucket=stack.lz_bucket, Key=folder + "a.csv")["Body"].read() == CSV
    assert abs(first["upload_date"] - time.time()) < 60

    # Nothing changed: everything is skipped by name, size and ETag.
    second = await run(api, alice, dataset)
    assert second["status"] == "succeeded" and second["copied"] == []
    assert {o["reason"] for o in second["skipped"]} == {
        "already ingested: same name, size and ETag"
    }
    # Changed content of the same size (new ETag), and a renamed copy: both are new files.
    remote.s3.put_object(Bucket=bucket, Key="exports/in/a.csv", Body=b"id,name\n9,z\n")
    remote.s3.copy_object(Bucket=bucket, Key="exports/in/b2.csv",
                          CopySource={"Bucket": bucket, "Key": "exports/in/b.csv"})  # fmt: skip
    third = await run(api, alice, dataset)
    assert names(third["copied"]) == ["exports/in/a.csv", "exports/in/b2.csv"]
    assert names(third["skipped"]) == ["exports/in/b.csv", "exports/in/sub/c.csv"]

    # Each copy, then the batch's _SUCCESS, is announced as file.landed; the run's end as
    # ingestion.finished to the binding's creator.
    bootstrap = stack.kafka_bootstrap_servers

    # (When the platform's reload service runs in the same session, its bucket watcher
    # announces the same LZ objects too, as source "watcher": look at ingestion's own.)
    async def from_ingestion() -> list[dict[str, Any]]:
        found = await messages(bootstrap, "loadbay.file.landed", folder)
        ours = [m for m in found if m["value"]["data"]["source"] == "ingestion"]
        done = any(m["value"]["data"]["key"].endswith("/_SUCCESS") for m in ours)
        return ours if done else []

    landed = await eventually(from_ingestion, within=15)
    keys = [m["value"]["data"]["key"] for m in landed]
    assert keys[-1] == folder + "_SUCCESS" and sorted(keys[:-1]) == [
        folder + n for n in ("a.csv", "b.csv", "sub__c.csv")
    ]
    assert {m["value"]["data"]["source"] for m in landed} == {"ingestion"}
    assert landed[0]["value"]["data"]["size"] == len(CSV)
    finished = await eventually(
        lambda: messages(bootstrap, "loadbay.ingestion.finished", first["id"]), within=15
    )
    data = finished[0]["value"]["data"]
    assert data["status"] == "succeeded" and data["recipients"] == [
        {"user_id": alice.user_id, "email": alice.email}
    ]
    assert sorted(data["copied"]) == names(first["copied"])


async def test_v16_fails_the_whole_run_on_other_storage_classes(
    api: httpx.AsyncClient, alice: User, remote: Remote, s3: Any, stack: StackInfo
) -> None:
    _, connection, dataset = await setup(api, alice, remote, "1.6", {
        "exports/in/ok.csv": CSV, "exports/in/cold.csv": (CSV, "GLACIER"),
        "exports/in/ia.csv": (CSV, "STANDARD_IA"),
    })  # fmt: skip
    failed = await run(api, alice, dataset)
    assert failed["status"] == "failed" and failed["copied"] == []
    assert "exports/in/cold.csv (GLACIER)" in failed["reason"]
    assert "exports/in/ia.csv (STANDARD_IA)" in failed["reason"]
    assert names(failed["failed"]) == ["exports/in/cold.csv", "exports/in/ia.csv"]
    assert lz_keys(s3, stack.lz_bucket, dataset) == []
    finished = await eventually(
        lambda: messages(stack.kafka_bootstrap_servers, "loadbay.ingestion.finished", failed["id"]),
        within=15,
    )
    assert finished[0]["value"]["data"]["status"] == "failed"
    assert "GLACIER" in finished[0]["value"]["data"]["reason"]
    # 1.7 skips the archived objects and ingests the rest.
    upgraded = await api.post(f"/connections/{connection}/upgrade", json={"version": "1.7"},
                              headers=alice.headers)  # fmt: skip
    assert upgraded.status_code == 200
    ok = await run(api, alice, dataset)
    assert ok["status"] == "succeeded" and ok["version"] == "1.7"
    assert names(ok["copied"]) == ["exports/in/ia.csv", "exports/in/ok.csv"]


async def test_v17_skips_glacier_and_deep_archive_and_succeeds(
    api: httpx.AsyncClient, alice: User, remote: Remote
) -> None:
    _, _, dataset = await setup(api, alice, remote, "1.7", {
        "exports/in/ok.csv": CSV, "exports/in/cold.csv": (CSV, "GLACIER"),
        "exports/in/deep.csv": (CSV, "DEEP_ARCHIVE"), "exports/in/ia.csv": (CSV, "STANDARD_IA"),
    })  # fmt: skip
    result = await run(api, alice, dataset)
    assert result["status"] == "succeeded" and result["reason"] is None
    assert names(result["copied"]) == ["exports/in/ia.csv", "exports/in/ok.csv"]
    assert {o["key"]: o["storage_class"] for o in result["skipped"]} == {
        "exports/in/cold.csv": "GLACIER", "exports/in/deep.csv": "DEEP_ARCHIVE",
    }  # fmt: skip
    assert all("restore the object" in o["reason"] for o in result["skipped"])
    assert (result["copied_count"], result["skipped_count"]) == (2, 2)


async def test_v18_skip_lz_lands_append_datasets_in_the_dlz(
    api: httpx.AsyncClient, alice: User, remote: Remote, s3: Any, stack: StackInfo
) -> None:
    files = {"exports/in/a.csv": CSV, "exports/in/cold.csv": (CSV, "GLACIER")}
    _, _, append = await setup(api, alice, remote, "1.8", files, dataset_type="append")
    result = await run(api, alice, append)
    assert result["status"] == "succeeded" and result["skip_lz"] is True
    assert names(result["skipped"]) == ["exports/in/cold.csv"]  # 1.8 includes 1.7's rules
    folder = f"{append}/upload_date={result['upload_date']}/{alice.user_id}/csv/"
    assert result["copied"][0]["bucket"] == stack.dlz_bucket
    assert lz_keys(s3, stack.dlz_bucket, append) == [folder + "a.csv"]
    assert lz_keys(s3, stack.lz_bucket, append) == []
    landed = await eventually(
        lambda: messages(stack.kafka_bootstrap_servers, "loadbay.file.landed", folder), within=15
    )
    assert [(m["value"]["data"]["bucket"], m["value"]["data"]["key"]) for m in landed] == [
        (stack.dlz_bucket, folder + "a.csv"), (stack.dlz_bucket, folder + "_SUCCESS"),
    ]  # fmt: skip
    # Reload datasets at 1.8 land in the LZ, as at 1.7.
    _, _, reload = await setup(api, alice, remote, "1.8", files, dataset_type="reload")
    result = await run(api, alice, reload)
    assert result["skip_lz"] is False and result["copied"][0]["bucket"] == stack.lz_bucket
    assert len(lz_keys(s3, stack.lz_bucket, reload)) == 2  # the file and _SUCCESS


async def test_runs_fail_with_the_reason(
    api: httpx.AsyncClient, alice: User, remote: Remote
) -> None:
    bucket = remote.bucket()
    remote.s3.put_object(Bucket=bucket, Key="exports/in/a.csv", Body=CSV)

    async def outcome(dataset: str) -> str:
        result = await run(api, alice, dataset)
        assert result["status"] == "failed", result
        return str(result["reason"])

    conn = (await create_connection(api, alice, remote, bucket))["name"]
    missing_path = await bind(api, alice, conn, directory_path="exports/nothing")
    assert "directory path 'exports/nothing/' not found" in await outcome(missing_path)
    conn = (await create_connection(api, alice, remote, "no-such-bucket-here"))["name"]
    assert "does not exist" in await outcome(await bind(api, alice, conn))
    wrong = await create_connection(api, alice, remote, bucket, access_key_id="AKIAWRONG0000001")
    assert "wrong credentials" in await outcome(await bind(api, alice, wrong["name"]))
    lister = await create_connection(api, alice, remote, bucket, keys=remote.lister)
    result = await run(api, alice, await bind(api, alice, lister["name"]))
    assert result["status"] == "failed" and "could not be copied" in result["reason"]
    assert "access denied" in result["failed"][0]["reason"]
    opt_in = await create_connection(api, alice, remote, bucket, region="me-south-1")
    assert "not enabled in loadbay" in await outcome(await bind(api, alice, opt_in["name"]))


async def test_bucket_policy_connections_read_as_loadbays_principal(
    api: httpx.AsyncClient, alice: User, remote: Remote
) -> None:
    bucket = remote.bucket()
    remote.s3.put_object(Bucket=bucket, Key="exports/in/a.csv", Body=CSV)
    made = await create_connection(api, alice, remote, bucket, access_type="bucket_policy")
    result = await run(api, alice, await bind(api, alice, made["name"]))
    assert result["status"] == "succeeded" and names(result["copied"]) == ["exports/in/a.csv"]


async def test_large_objects_are_copied_in_parts(
    api: httpx.AsyncClient, alice: User, remote: Remote, s3: Any, stack: StackInfo
) -> None:
    body = os.urandom(20 << 20)
    _, _, dataset = await setup(api, alice, remote, "1.8", {"exports/in/big.csv": body})
    result = await run(api, alice, dataset)
    assert result["status"] == "succeeded", result
    (copied,) = result["copied"]
    copy = s3.get_object(Bucket=stack.lz_bucket, Key=copied["dest_key"])
    assert copy["ETag"].strip('"').endswith("-3")  # 8 MiB parts: 8 + 8 + 4
    assert hashlib.md5(copy["Body"].read()).digest() == hashlib.md5(body).digest()


async def test_runs_beyond_the_limit_wait_and_then_complete(
    api: httpx.AsyncClient, alice: User, remote: Remote
) -> None:
    big = {"exports/in/big.csv": os.urandom(12 << 20), "exports/in/a.csv": CSV}
    _, _, first = await setup(api, alice, remote, "1.7", big)
    _, _, second = await setup(api, alice, remote, "1.7", {"exports/in/b.csv": CSV})
    one = await start_run(api, alice, first)
    two = await start_run(api, alice, second)
    queued = (await api.get(f"/runs/{two}", headers=alice.headers)).json()
    assert queued["status"] == "queued" and queued["started_at"] is None
    again = await api.post(f"/bindings/{second}/runs", headers=alice.headers)
    assert again.status_code == 409 and "queued or running" in again.json()["message"]
    a, b = await finished_run(api, alice, one), await finished_run(api, alice, two)
    assert a["status"] == b["status"] == "succeeded"
    assert b["started_at"] >= a["finished_at"]  # max_concurrent_loads=1: it waited


async def test_a_due_schedule_fires_once_across_replicas(
    api: httpx.AsyncClient, alice: User, remote: Remote, db: asyncpg.Pool,
    settings: PlatformSettings,
) -> None:  # fmt: skip
    _, _, dataset = await setup(api, alice, remote, "1.7", {"exports/in/a.csv": CSV})
    bad = await api.put(f"/bindings/{dataset}/schedule", json={"cron": "every day"},
                        headers=alice.headers)  # fmt: skip
    assert bad.status_code == 400 and "not a cron expression" in bad.json()["message"]
    wrong_type = await api.put(f"/bindings/{dataset}/schedule",
                               json={"cron": "0 3 * * *", "job_type": "ETL"},
                               headers=alice.headers)  # fmt: skip
    assert wrong_type.status_code == 422
    made = await api.put(f"/bindings/{dataset}/schedule", json={"cron": "0 3 * * *"},
                         headers=alice.headers)  # fmt: skip
    assert made.status_code == 200 and made.json()["job_type"] == "DataIngestion"
    async with db.acquire() as conn:
        binding_id = await conn.fetchval("SELECT id FROM bindings WHERE dataset = $1", dataset)
        await conn.execute("UPDATE schedules SET next_run_at = $2 WHERE binding_id = $1",
                           binding_id, datetime.now(UTC) - timedelta(seconds=1))  # fmt: skip
    # Five more schedulers (as on five replicas) race the service's own.
    fired = await asyncio.gather(*(scheduler.fire_due(db) for _ in range(5)))
    assert sum(fired) <= 1
    runs = await eventually(lambda: _runs(api, alice, dataset), within=10)
    await asyncio.sleep(0.5)  # more scheduler ticks: still one run
    runs = await _runs(api, alice, dataset)
    assert len(runs) == 1 and runs[0]["trigger"] == "schedule"
    done = await finished_run(api, alice, runs[0]["id"])
    assert done["status"] == "succeeded"
    shown = (await api.get(f"/bindings/{dataset}", headers=alice.headers)).json()
    assert shown["schedule"]["cron"] == "0 3 * * *"
    assert shown["schedule"]["next_run_at"].endswith("03:00:00+00:00")


async def _runs(api: httpx.AsyncClient, user: User, dataset: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (
        await api.get(f"/bindings/{dataset}/runs", headers=user.headers)
    ).json()
    return found


async def test_a_crashed_run_resumes_without_copying_twice(
    api: httpx.AsyncClient, alice: User, remote: Remote, s3: Any, stack: StackInfo,
    db: asyncpg.Pool, ingestion: Ingestion,
) -> None:  # fmt: skip
    _, _, dataset = await setup(api, alice, remote, "1.7", {
        "exports/in/a.csv": CSV, "exports/in/b.csv": b"id,name\n2,b\n",
    })  # fmt: skip
    # As a replica that died mid-run leaves it: `running`, an old heartbeat, a.csv copied
    # and recorded in the run's ledger.
    run_id, upload_date = str(uuid.uuid4()), 1700000000
    folder = f"{dataset}/upload_date={upload_date}/{alice.user_id}/csv/"
    s3.put_object(Bucket=stack.lz_bucket, Key=folder + "a.csv", Body=b"copied before the crash")
    async with db.acquire() as conn, conn.transaction():
        binding_id = await conn.fetchval("SELECT id FROM bindings WHERE dataset = $1", dataset)
        await conn.execute(
            "INSERT INTO runs (id, binding_id, status, trigger, triggered_by, version, skip_lz,"
            " upload_date, started_at, worker, heartbeat_at)"
            " VALUES ($1, $2, 'running', 'api', $3, '1.7', false, $4, now(), 'dead-replica',"
            " now() - interval '1 hour')",
            run_id, binding_id, alice.user_id, upload_date,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO run_objects (run_id, source_key, name, size, etag, storage_class,"
            " status, dest_bucket, dest_key, dest_etag)"
            " VALUES ($1, 'exports/in/a.csv', 'a.csv', $2, $3, 'STANDARD', 'copied', $4, $5, 'e')",
            run_id, len(CSV), hashlib.md5(CSV).hexdigest(), stack.lz_bucket, folder + "a.csv",
        )  # fmt: skip
    ingestion.service.worker(ingestion.state.resources).wake()  # type: ignore[arg-type]
    result = await finished_run(api, alice, run_id)
    assert result["status"] == "succeeded", result
    assert names(result["copied"]) == ["exports/in/a.csv", "exports/in/b.csv"]
    # a.csv was not copied again; b.csv was, into the same batch folder.
    body = s3.get_object(Bucket=stack.lz_bucket, Key=folder + "a.csv")["Body"].read()
    assert body == b"copied before the crash"
    assert lz_keys(s3, stack.lz_bucket, dataset) == [
        folder + "_SUCCESS",
        folder + "a.csv",
        folder + "b.csv",
    ]
    again = await run(api, alice, dataset)  # both are in the dataset's ledger now
    assert again["copied"] == [] and len(again["skipped"]) == 2
