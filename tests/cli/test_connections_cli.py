"""`loadbay connections`: S3 connections, their versions, bindings, schedules and runs from the
terminal, against the session's ingestion service and its remote S3 endpoint."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx

from tests.cli.runner import run_cli
from tests.conftest import User, eventually
from tests.ingestion.serving import REGION, Ingestion, Remote
from tests.reload.flows import create_dataset


def _env(ingestion: Ingestion, user: User) -> dict[str, str]:
    return {"LOADBAY_INGESTION_URL": ingestion.url, "LOADBAY_TOKEN": user.token}


async def test_a_connection_from_create_to_a_run_with_the_cli(
    ingestion: Ingestion, remote: Remote, alice: User
) -> None:
    env = _env(ingestion, alice)
    async with httpx.AsyncClient(base_url=ingestion.reload_url) as reload:
        # First: the ingestion service learns of it a moment later (dataset.created).
        domain, ds = f"d_{uuid.uuid4().hex[:8]}", f"ds_{uuid.uuid4().hex[:8]}"
        await create_dataset(reload, alice, domain, ds)
    dataset = f"{domain}/{ds}"
    bucket = remote.bucket("cli")
    remote.s3.put_object(Bucket=bucket, Key="exports/in/cities.csv", Body=b"id,name\n1,Oslo\n")
    remote.s3.put_object(Bucket=bucket, Key="exports/in/notes.txt", Body=b"not csv")
    name = f"cli-{uuid.uuid4().hex[:8]}"
    keys = remote.admin
    code, out, err = await run_cli(
        "connections", "create", name, "--bucket", bucket, "--region", REGION,
        "--endpoint-url", remote.endpoint_url, "--access-key-id", keys.access_key_id,
        "--version", "1.6", "-o", "json",
        env={**env, "LOADBAY_CONNECTION_SECRET_ACCESS_KEY": keys.secret_access_key},
    )  # fmt: skip
    assert code == 0, err
    made = json.loads(out)
    assert (made["name"], made["version"], made["has_access_keys"]) == (name, "1.6", True)
    assert keys.secret_access_key not in out

    async def versions() -> list[dict[str, Any]]:
        code, out, err = await run_cli("connections", "upgrade", name, "-o", "json", env=env)
        assert code == 0, err
        upgraded = json.loads(out)
        assert (upgraded["version"], upgraded["downgrade_to"]) == ("1.7", ["1.6"])
        code, out, err = await run_cli(
            "connections", "downgrade", name, "--to", "1.6", "-o", "json", env=env
        )
        assert code == 0, err
        history: list[dict[str, Any]] = json.loads(out)["version_history"]
        return history

    async def bound() -> dict[str, Any] | None:
        code, out, err = await run_cli(
            "connections", "bind", name, dataset, "--directory-path", "exports/in", "-o", "json",
            env=env,
        )  # fmt: skip
        if code != 0:  # ingestion has not seen dataset.created yet: it says to retry
            assert "retry in a moment" in err, err
            return None
        found: dict[str, Any] = json.loads(out)
        return found

    (code, out, err), history, binding = await asyncio.gather(
        run_cli("connections", "test", name, "-o", "json", env=env),
        versions(),
        eventually(bound, within=30, interval=0.3),
    )
    assert code == 0, err
    tested = json.loads(out)
    assert (tested["bucket"], tested["ok"], tested["can_list"], tested["can_read"]) == (
        bucket, True, True, True,
    )  # fmt: skip
    assert [(h["action"], h["to_version"]) for h in history] == [
        ("create", "1.6"), ("upgrade", "1.7"), ("downgrade", "1.6"),
    ]  # fmt: skip
    assert (binding["dataset"], binding["connection"], binding["enabled"]) == (
        dataset, name, True,
    )  # fmt: skip
    code, out, err = await run_cli(
        "connections", "schedule", dataset, "--cron", "0 3 * * *", "-o", "json", env=env
    )
    assert code == 0, err
    assert json.loads(out)["cron"] == "0 3 * * *"
    (code, out, err), listing = await asyncio.gather(
        run_cli(
            "connections", "run", dataset, "--follow", "--interval", "0.2", "-o", "json", env=env
        ),
        run_cli("connections", "bindings", name, "-o", "json", env=env),
    )
    (listed,) = json.loads(listing[1])
    assert listed["schedule"]["cron"] == "0 3 * * *"
    assert code == 0, err
    run = json.loads(out)
    assert run["status"] == "succeeded" and f"run {run['id']}: succeeded" in err
    assert [o["key"] for o in run["copied"]] == ["exports/in/cities.csv"]
    assert (run["copied_count"], run["skipped_count"], run["failed_count"]) == (1, 0, 0)
    runs, shown = await asyncio.gather(
        run_cli("connections", "runs", dataset, "-o", "json", env=env),
        run_cli("connections", "show-run", run["id"], env=env),  # a table
    )
    assert [r["id"] for r in json.loads(runs[1])] == [run["id"]]
    assert shown[0] == 0 and "cities.csv" in shown[1] and run["id"] in shown[1]


async def test_a_connection_that_cannot_read_fails_its_test_with_the_reason(
    ingestion: Ingestion, remote: Remote, alice: User
) -> None:
    env = _env(ingestion, alice)
    bucket = remote.bucket("cli")
    remote.s3.put_object(Bucket=bucket, Key="a.csv", Body=b"x\n")
    name = f"cli-{uuid.uuid4().hex[:8]}"
    (code, _, err), (refused, out, err422) = await asyncio.gather(
        run_cli(
            "connections", "create", name, "--bucket", bucket, "--region", REGION,
            "--endpoint-url", remote.endpoint_url, "--access-key-id", remote.lister.access_key_id,
            env={**env, "LOADBAY_CONNECTION_SECRET_ACCESS_KEY": remote.lister.secret_access_key},
        ),
        # A request the service refuses (422): one line naming the fields, no dict dump.
        run_cli(
            "connections", "create", "x", "--bucket", "Not_A_Bucket", "--region", REGION,
            "--access-type", "bucket_policy", env=env,
        ),
    )  # fmt: skip
    assert code == 0, err
    assert refused == 1 and out == ""
    assert err422.startswith("error: invalid request: ") and "(HTTP 422)" in err422
    assert "name: String should match pattern '^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$'" in err422
    assert "bucket: String should match pattern" in err422
    assert "'loc'" not in err422 and "[{" not in err422 and err422.count("\n") == 1
    code, out, err = await run_cli("connections", "test", name, env=env)
    assert code == 3, err  # it can list, not read: the test says so, and why
    assert "fails" in out and "read" in out.lower()
