"""Fixtures of the ingestion tests: a second, "remote" S3 endpoint with its own IAM
credentials, and the ingestion service running in this process against the session stack
(with the reload service, whose dataset events tell ingestion which datasets exist).

The remote endpoint is on 127.0.0.1, which connections may not reach by default: the settings
allow exactly its host and port (LOADBAY_INGESTION_ALLOWED_ENDPOINTS), nothing else local.

The remote endpoint is a moto server that enforces IAM authentication after its first three
requests (`INITIAL_NO_AUTH_ACTION_COUNT`), which create its admin user: from then on only
signed requests with known keys and allowing policies succeed, so wrong keys and missing
permissions fail as they would on AWS.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import httpx
import pytest
from pydantic import SecretStr

from loadbay_cli.stack import free_port
from loadbay_ingestion.app import IngestionService
from loadbay_ingestion.settings import IngestionSettings
from loadbay_platform.db import create_pool
from loadbay_platform.service import RunningService, run_service
from loadbay_platform.settings import PlatformSettings
from tests.conftest import Platform, User, eventually
from tests.reload.flows import create_dataset

REGION = "us-east-1"


@dataclass
class Keys:
    access_key_id: str
    secret_access_key: str


@dataclass
class Remote:
    endpoint_url: str
    admin: Keys  # may do anything
    loadbay: Keys  # loadbay's own principal (bucket_policy connections): list + read
    lister: Keys  # may list buckets but not read objects
    s3: Any  # boto3 client as admin

    def bucket(self, prefix: str = "src") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.s3.create_bucket(Bucket=name)
        return name


def _policy(actions: list[str]) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
    })  # fmt: skip


def _user(iam: Any, name: str, actions: list[str]) -> Keys:
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="access", PolicyDocument=_policy(actions))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return Keys(key["AccessKeyId"], key["SecretAccessKey"])


@pytest.fixture(scope="session")
def remote() -> Iterator[Remote]:
    port = free_port()
    state = Path(tempfile.mkdtemp(prefix="loadbay-remote-s3-"))
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3", PYTHONUNBUFFERED="1")
    with (state / "moto.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError((state / "moto.log").read_text()) from None
                time.sleep(0.05)
        endpoint = f"http://127.0.0.1:{port}"

        def iam(keys: Keys | None) -> Any:
            return boto3.client(
                "iam", endpoint_url=endpoint, region_name=REGION,
                aws_access_key_id=keys.access_key_id if keys else "bootstrap",
                aws_secret_access_key=keys.secret_access_key if keys else "bootstrap",
            )  # fmt: skip

        admin = _user(iam(None), "admin", ["*"])  # the three unauthenticated requests
        loadbay = _user(iam(admin), "loadbay", ["s3:ListBucket", "s3:GetObject"])
        lister = _user(iam(admin), "lister", ["s3:ListBucket"])
        s3 = boto3.client(
            "s3", endpoint_url=endpoint, region_name=REGION,
            aws_access_key_id=admin.access_key_id, aws_secret_access_key=admin.secret_access_key,
        )  # fmt: skip
        yield Remote(endpoint, admin, loadbay, lister, s3)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def ingestion_settings(remote: Remote) -> IngestionSettings:
    return IngestionSettings(
        principal_arn="arn:aws:iam::123456789012:user/loadbay",
        remote_endpoint_url=remote.endpoint_url,
        remote_access_key_id=remote.loadbay.access_key_id,
        remote_secret_access_key=SecretStr(remote.loadbay.secret_access_key),
        allowed_endpoints=[remote.endpoint_url.removeprefix("http://")],
        secret_keys=[SecretStr("tests-ingestion-key-1")],
        enabled_opt_in_regions=["eu-south-1"],
        # One run at a time: the throttling tests rely on it; the others wait their turn.
        max_concurrent_loads=1,
        poll_interval_s=0.2,
        scheduler_interval_s=0.3,
        heartbeat_interval_s=0.5,
        stale_after_s=5,
        copy_concurrency=4,
        part_size_mib=8,
    )


@dataclass
class Ingestion:
    url: str
    state: RunningService
    service: IngestionService
    reload_url: str


@pytest.fixture(scope="session")
async def ingestion(
    settings: PlatformSettings, ingestion_settings: IngestionSettings, platform: Platform
) -> AsyncIterator[Ingestion]:
    service = IngestionService(ingestion_settings, dev_mode=settings.dev_mode)
    state = RunningService()
    task = asyncio.create_task(run_service(service, settings, port=0, state=state))
    try:
        await asyncio.wait_for(state.ready.wait(), 30)
        yield Ingestion(f"http://127.0.0.1:{state.port}", state, service, platform.urls["reload"])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class IngestionApi(httpx.AsyncClient):
    """The ingestion API, and beside it the reload API (`reload`) where datasets are made."""

    reload: httpx.AsyncClient


@pytest.fixture
async def api(ingestion: Ingestion) -> AsyncIterator[IngestionApi]:
    async with (
        IngestionApi(base_url=ingestion.url, timeout=30) as client,
        httpx.AsyncClient(base_url=ingestion.reload_url, timeout=30) as reload,
    ):
        client.reload = reload
        yield client


@pytest.fixture(scope="session")
async def db(settings: PlatformSettings, ingestion: Ingestion) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the service's schema, for tests that look at or set up its tables."""
    pool = await create_pool(settings.postgres, "loadbay_ingestion")
    try:
        yield pool
    finally:
        await pool.close()


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


async def create_connection(
    api: httpx.AsyncClient, user: User, remote: Remote, bucket: str, *,
    keys: Keys | None = None, expect: int = 201, **extra: Any,
) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {
        "name": unique("conn"), "bucket": bucket, "access_type": "access_keys",
        "region": REGION, "endpoint_url": remote.endpoint_url, **extra,
    }  # fmt: skip
    if body["access_type"] == "access_keys":
        keys = keys or remote.admin
        body.setdefault("access_key_id", keys.access_key_id)
        body.setdefault("secret_access_key", keys.secret_access_key)
    made = await api.post("/connections", json=body, headers=user.headers)
    assert made.status_code == expect, made.text
    return made.json()


async def new_dataset(api: IngestionApi, user: User, dataset_type: str = "reload") -> str:
    """A fresh dataset of `user`, made through the reload service: `<domain>/<name>`."""
    domain, name = unique("dom"), unique("ds")
    await create_dataset(api.reload, user, domain, name, dataset_type=dataset_type)
    return f"{domain}/{name}"


async def bind_dataset(
    api: IngestionApi, user: User, connection: str, dataset: str, *, expect: int = 201,
    seen: bool = False, **fields: Any,
) -> httpx.Response:  # fmt: skip
    """Bind `dataset`, waiting while ingestion has not yet seen its `dataset.created` (unless
    `seen`: the answer is taken as it is)."""
    body = {"dataset": dataset, "file_type": "csv", "directory_path": "exports/in", **fields}

    async def attempt() -> httpx.Response | None:
        made = await api.post(f"/connections/{connection}/bindings", json=body,
                              headers=user.headers)  # fmt: skip
        if made.status_code == 422 and "retry in a moment" in made.text and not seen:
            return None
        return made

    made = await eventually(attempt, within=20)
    assert made.status_code == expect, made.text
    return made


async def bind(
    api: IngestionApi, user: User, connection: str, *, dataset_type: str = "reload",
    directory_path: str = "exports/in", file_type: str = "csv",
) -> str:  # fmt: skip
    """Create a dataset of `user` and bind it to `connection`."""
    dataset = await new_dataset(api, user, dataset_type)
    await bind_dataset(api, user, connection, dataset, dataset_type=dataset_type,
                       directory_path=directory_path, file_type=file_type)  # fmt: skip
    return dataset


async def start_run(api: httpx.AsyncClient, user: User, dataset: str) -> str:
    started = await api.post(f"/bindings/{dataset}/runs", headers=user.headers)
    assert started.status_code == 202, started.text
    return str(started.json()["run_id"])


async def finished_run(
    api: httpx.AsyncClient, user: User, run_id: str, within: float = 30
) -> dict[str, Any]:
    async def done() -> dict[str, Any]:
        run: dict[str, Any] = (await api.get(f"/runs/{run_id}", headers=user.headers)).json()
        return run if run["status"] in ("succeeded", "failed") else {}

    return await eventually(done, within=within, interval=0.1)


async def run(api: httpx.AsyncClient, user: User, dataset: str) -> dict[str, Any]:
    return await finished_run(api, user, await start_run(api, user, dataset))


@pytest.fixture
def settings_for_users(settings: PlatformSettings) -> list[User]:
    """A third user (besides alice and bob) for authorization tests."""
    from tests.conftest import make_user

    return [make_user(settings, "carol")]
