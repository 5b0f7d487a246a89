"""Fixtures and helpers of the ingestion tests. The remote S3 endpoint and the ingestion
service themselves are session fixtures of tests/ingestion/serving.py (registered in
tests/conftest.py, as the CLI tests use them too).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from loadbay_platform.db import close_pool, create_pool
from loadbay_platform.settings import PlatformSettings
from tests.conftest import User, eventually
from tests.ingestion.serving import REGION, Ingestion, Keys, Remote
from tests.reload.flows import create_dataset

__all__ = ["REGION", "Ingestion", "Keys", "Remote"]


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
        await close_pool(pool)


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
